// Self-tests of the address-space core on real page tables: ring-3 programs
// that fault for real, resolved (or refused) by AddressSpace::handle_fault.
#include <new>

#include "selftest/selftest.hpp"
#include "user/user_mode.hpp"

namespace kernel {

namespace {

constexpr mm::u64 kData = 0x10000000;
constexpr mm::u64 kPfPresent = 0x1, kPfWrite = 0x2, kPfUser = 0x4, kPfFetch = 0x10;

alignas(KernelSpace) mm::u8 space_storage[2][sizeof(KernelSpace)];

// A test process, destroyed (and checked for leaks) when the test ends.
class Process {
 public:
  explicit Process(int slot) : space_(*new (space_storage[slot]) KernelSpace(kernel_vm())) {}
  ~Process() {
    space_.destroy();
    space_.~KernelSpace();
  }
  bool start() { return space_.init() == mm::Status::Ok && prepare_test_process(space_) == mm::Status::Ok; }
  KernelSpace& space() { return space_; }
  UserRunResult run(UserOp op, mm::u64 address, mm::u64 value = 0) { return run_user(space_, op, address, value); }

 private:
  KernelSpace& space_;
};

// Frames and commitments before a test, compared after it.
class LeakCheck {
 public:
  LeakCheck() : free_(free_now()) {}
  bool clean() {
    const mm::FrameCount now = free_now();
    if (now != free_ || kernel_memory.pmm->stats().committed != 0 || kernel_vm().live_regions() != 0) {
      kprintf("    leak: %lu free frames before, %lu after; %lu committed; %lu regions\n", free_, now,
              kernel_memory.pmm->stats().committed, kernel_vm().live_regions());
      return false;
    }
    return true;
  }

 private:
  static mm::FrameCount free_now() {
    kernel_memory.pmm->drain_all_caches();
    return kernel_memory.pmm->stats().free;
  }
  mm::FrameCount free_;
};

mm::MapRequest data(mm::u64 pages, mm::Prot prot = mm::Prot::ReadWrite) {
  return mm::MapRequest{.address = mm::VirtAddr(kData), .length = pages * mm::kPageSize, .prot = prot};
}

bool demand_zero_in_ring3() {
  LeakCheck leaks;
  {
    Process p(0);
    KCHECK(p.start());
    KCHECK(p.space().map(data(2)) == mm::Status::Ok);
    UserRunResult r = p.run(UserOp::Read, kData + 8);
    KCHECK(r.exited && r.value == 0);
    KCHECK(r.last_resolved == mm::FaultOutcome::MapBackingReadOnly);
    r = p.run(UserOp::Write, kData + 8, 0x1234);
    KCHECK(r.exited && r.value == 0x1234);
    KCHECK(r.last_resolved == mm::FaultOutcome::MapBacking);
    r = p.run(UserOp::Read, kData + mm::kPageSize);
    KCHECK(r.exited && r.value == 0);
  }
  return leaks.clean();
}

bool copy_on_write_after_fork() {
  LeakCheck leaks;
  {
    Process parent(0);
    KCHECK(parent.start());
    KCHECK(parent.space().map(data(1)) == mm::Status::Ok);
    KCHECK(parent.run(UserOp::Write, kData, 111).value == 111);
    Process child(1);
    KCHECK(child.space().init() == mm::Status::Ok);
    KCHECK(parent.space().fork(child.space()) == mm::Status::Ok);
    UserRunResult r = child.run(UserOp::Write, kData, 222);
    KCHECK(r.exited && r.value == 222);
    KCHECK(r.last_resolved == mm::FaultOutcome::CopyBacking);
    r = parent.run(UserOp::Read, kData);
    KCHECK(r.exited && r.value == 111);
    KCHECK(child.run(UserOp::Read, kData).value == 222);
    // The parent is the old frame's only user now: it writes in place.
    r = parent.run(UserOp::Write, kData, 333);
    KCHECK(r.exited && r.value == 333 && r.last_resolved == mm::FaultOutcome::MapBacking);
    KCHECK(child.run(UserOp::Read, kData).value == 222);
  }
  return leaks.clean();
}

bool write_to_read_only_is_segv() {
  LeakCheck leaks;
  {
    Process p(0);
    KCHECK(p.start());
    KCHECK(p.space().map(data(1, mm::Prot::Read)) == mm::Status::Ok);
    KCHECK(p.run(UserOp::Read, kData).exited);  // maps it (read-only)
    const UserRunResult r = p.run(UserOp::Write, kData, 5);
    KCHECK(!r.exited && r.fault == mm::FaultOutcome::Segv);
    KCHECK(r.fault_address == kData);
    KCHECK(r.error_code == (kPfPresent | kPfWrite | kPfUser));
    KCHECK(p.run(UserOp::Read, kData).exited);  // the kernel handled it; the next run goes on
  }
  return leaks.clean();
}

bool execute_on_nx_is_segv() {
  LeakCheck leaks;
  {
    Process p(0);
    KCHECK(p.start());
    KCHECK(p.space().map(data(1)) == mm::Status::Ok);
    KCHECK(p.space().write_u64(mm::VirtAddr(kData), 0xC3) == mm::Status::Ok);  // ret
    UserRunResult r = p.run(UserOp::Execute, kData);
    KCHECK(!r.exited && r.fault == mm::FaultOutcome::Segv);
    KCHECK(r.fault_address == kData && (r.error_code & kPfFetch));
    KCHECK(p.space().protect(mm::VirtAddr(kData), mm::kPageSize, mm::Prot::ReadExec) == mm::Status::Ok);
    r = p.run(UserOp::Execute, kData);
    KCHECK(r.exited && r.value == 0);  // executable now: the ret came back
  }
  return leaks.clean();
}

bool stack_overflow_hits_the_guard_page() {
  LeakCheck leaks;
  {
    Process p(0);
    KCHECK(p.start());
    const UserRunResult r = p.run(UserOp::Overflow, 0, 7);
    KCHECK(!r.exited && r.fault == mm::FaultOutcome::Segv);
    const mm::u64 guard = kUserStackTop - kUserStackSize - mm::kPageSize;
    KCHECK(r.fault_address >= guard && r.fault_address < guard + mm::kPageSize);
    KCHECK(r.resolved_faults == kUserStackSize / mm::kPageSize);  // every stack page was demand-faulted first
  }
  return leaks.clean();
}

bool unmap_then_access_is_segv() {
  LeakCheck leaks;
  {
    Process p(0);
    KCHECK(p.start());
    KCHECK(p.space().map(data(2)) == mm::Status::Ok);
    KCHECK(p.run(UserOp::Write, kData + mm::kPageSize, 9).value == 9);
    KCHECK(p.space().unmap(mm::VirtAddr(kData + mm::kPageSize), mm::kPageSize) == mm::Status::Ok);
    const UserRunResult r = p.run(UserOp::Read, kData + mm::kPageSize);
    KCHECK(!r.exited && r.fault == mm::FaultOutcome::Segv && !(r.error_code & kPfPresent));
    KCHECK(p.run(UserOp::Read, kData).exited);
  }
  return leaks.clean();
}

}  // namespace

const SelfTestCase kVmSelfTests[] = {
    {"vm: demand-zero page in ring 3", demand_zero_in_ring3},
    {"vm: copy-on-write after fork", copy_on_write_after_fork},
    {"vm: write to read-only is a segv", write_to_read_only_is_segv},
    {"vm: execute on NX is a segv", execute_on_nx_is_segv},
    {"vm: stack overflow hits the guard", stack_overflow_hits_the_guard_page},
    {"vm: unmap then access is a segv", unmap_then_access_is_segv},
};
const mm::usize kVmSelfTestCount = sizeof(kVmSelfTests) / sizeof(kVmSelfTests[0]);

}  // namespace kernel
