// The oracle (src/emu/machine/oracle.hpp) on a machine of its own, driven by
// hand from the test's thread: the core builds the page tables, CPU 1 caches
// translations with real accesses, CPU 0 changes the tables under
// unsafe-local-only (which invalidates only the initiator's TLB, so CPU 1
// keeps what a missing remote shootdown leaves), and the oracle is asked
// directly. The large-entry cases are the blind spot of issue 1/10, bug 3:
// an invariant must hold for every 4 KiB page a 2 MiB entry covers, not
// only for its base page.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "emu/hw/tlb.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/machine.hpp"
#include "emu/trace/trace.hpp"

namespace {

namespace emu = pagelab::emu;
namespace hw = pagelab::hw;

// A 16 MiB machine's device window is 12 MiB to 16 MiB (device_window_bytes):
// two 2 MiB pages, mapped at a 2 MiB-aligned address.
constexpr std::uint64_t kRegion = 0x4000'0000;
constexpr std::uint64_t kDevice = 0xC0'0000;
constexpr std::uint64_t k2M = std::uint64_t{2} << 20;
constexpr std::uint64_t kAnon = 0x5000'0000;  // an ordinary 4 KiB page

class OracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    trace_ = emu::Trace::open(emu::TraceFormat::Text, "", {}, false, error);
    ASSERT_NE(trace_, nullptr) << error;
    emu::MachineConfig config;
    config.cpus = 2;
    config.ram_bytes = std::uint64_t{16} << 20;
    config.shootdown = mm::ShootdownPolicy::UnsafeLocalOnly;  // the missing remote shootdown
    machine_ = emu::Machine::create(config, *trace_, error);
    ASSERT_NE(machine_, nullptr) << error;
    ASSERT_NE(machine_->oracle(), nullptr) << "the oracle runs in deterministic machines";
    as_cpu(0);
    ASSERT_EQ(machine_->create_space("s"), mm::Status::Ok);
    space_ = machine_->space("s");
    ASSERT_EQ(space_->map(mm::MapRequest{.address = mm::VirtAddr(kRegion),
                                         .length = 2 * k2M,
                                         .prot = mm::Prot::ReadWrite,
                                         .kind = mm::RegionKind::Physical,
                                         .physical = mm::PhysAddr(kDevice)}),
              mm::Status::Ok);
    ASSERT_EQ(space_->map(mm::MapRequest{.address = mm::VirtAddr(kAnon), .length = mm::kPageSize, .populate = true}),
              mm::Status::Ok);
    // Both CPUs run the space from now on.
    for (std::uint32_t cpu : {1u, 0u}) {
      as_cpu(cpu);
      machine_->cpu_online();
      ASSERT_EQ(machine_->use_space("s"), mm::Status::Ok);
    }
  }

  // Offline, as at the end of a run, so that the space can be destroyed.
  void TearDown() override {
    if (!machine_) return;
    for (std::uint32_t cpu : {1u, 0u}) {
      as_cpu(cpu);
      machine_->cpu_offline();
    }
  }

  void as_cpu(std::uint32_t cpu) { emu::cpu_context = emu::CpuContext{machine_.get(), cpu, false}; }

  // CPU 1 reads `va`, caching its translation; returns the entry it cached.
  hw::TlbEntry cpu1_reads(std::uint64_t va) {
    as_cpu(1);
    EXPECT_EQ(machine_->access(mm::VirtAddr(va), hw::AccessKind::Read).kind, emu::AccessOutcome::Kind::Ok);
    const hw::TlbLookup hit = machine_->cpu(1).tlb.lookup(va, machine_->cpu(1).cr.pcid(), hw::AccessKind::Read);
    EXPECT_TRUE(hit.hit());
    as_cpu(0);
    return hit.entry;
  }

  // What the oracle says when `operation` on the space returns.
  std::optional<emu::Violation> returned(const char* operation) {
    machine_->oracle()->operation_returned(operation, space_->root().value(), space_->tlb_context());
    return machine_->violation();
  }

  // What it says of a hit of `entry` for `va` on CPU 1.
  std::optional<emu::Violation> cpu1_hits(std::uint64_t va, const hw::TlbEntry& entry) {
    as_cpu(1);
    machine_->oracle()->tlb_hit(va, entry, space_->root().value(), &space_->tlb_context());
    as_cpu(0);
    return machine_->violation();
  }

  std::unique_ptr<emu::Trace> trace_;
  std::unique_ptr<emu::Machine> machine_;
  emu::EmuSpace* space_ = nullptr;
};

TEST_F(OracleTest, CpuOneCachesTwoMiBEntries) {
  const hw::TlbEntry entry = cpu1_reads(kRegion + 0x5000);
  EXPECT_EQ(entry.size, hw::PageSize::Size2M);
  EXPECT_EQ(entry.page, kRegion);
  EXPECT_EQ(entry.frame, kDevice);
  EXPECT_TRUE(entry.rights.writable);
}

TEST_F(OracleTest, AnIntactLargeEntryIsNoViolation) {
  cpu1_reads(kRegion);
  cpu1_reads(kRegion + k2M);
  cpu1_reads(kAnon);
  EXPECT_FALSE(returned("map"));
}

// The base page keeps its rights; the entry is wrong one page further on.
TEST_F(OracleTest, ProtectInsideALargeEntryIsO2) {
  cpu1_reads(kRegion);
  ASSERT_EQ(space_->protect(mm::VirtAddr(kRegion + 0x1000), mm::kPageSize, mm::Prot::Read), mm::Status::Ok);
  const std::optional<emu::Violation> v = returned("protect");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O2");
  EXPECT_EQ(v->message,
            "protect returned while cpu 1 can still use its translation of 0x40001000 (2 MiB entry for 0x40000000, "
            "pcid 0): it allows writes the page tables forbid");
}

TEST_F(OracleTest, UnmapInsideALargeEntryIsO2) {
  cpu1_reads(kRegion + k2M);
  ASSERT_EQ(space_->unmap(mm::VirtAddr(kRegion + k2M + 0x10'3000), mm::kPageSize), mm::Status::Ok);
  const std::optional<emu::Violation> v = returned("unmap");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O2");
  EXPECT_EQ(v->message,
            "unmap returned while cpu 1 can still use its translation of 0x40303000 (2 MiB entry for 0x40200000, "
            "pcid 0): the page is not mapped any more");
}

// A page of the split 2 MiB page unmapped and mapped again, elsewhere: the
// walks go through the split page table page by page and find the frame.
TEST_F(OracleTest, ARemappedPageInsideALargeEntryIsO2) {
  cpu1_reads(kRegion);
  ASSERT_EQ(space_->unmap(mm::VirtAddr(kRegion + 0x1F'F000), mm::kPageSize), mm::Status::Ok);
  ASSERT_EQ(space_->map(mm::MapRequest{.address = mm::VirtAddr(kRegion + 0x1F'F000),
                                       .length = mm::kPageSize,
                                       .populate = true}),
            mm::Status::Ok);
  const std::optional<emu::Violation> v = returned("map");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O2");
  EXPECT_NE(v->message.find("its translation of 0x401ff000 (2 MiB entry for 0x40000000, pcid 0): it maps frame "
                            "0xdff000, the page tables map 0x"),
            std::string::npos)
      << v->message;
}

// 4 KiB entries are judged as they always were.
TEST_F(OracleTest, ProtectOfAFourKiBEntryIsO2) {
  cpu1_reads(kAnon);
  ASSERT_EQ(space_->protect(mm::VirtAddr(kAnon), mm::kPageSize, mm::Prot::Read), mm::Status::Ok);
  const std::optional<emu::Violation> v = returned("protect");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->message,
            "protect returned while cpu 1 can still use its translation of 0x50000000 (pcid 0): it allows writes the "
            "page tables forbid");
}

// A hit is judged on the page it uses: the stale entry is still right at its
// base page, wrong at the page that became read-only.
TEST_F(OracleTest, AHitThroughAStaleLargeEntryIsO4WhereItIsWrong) {
  const hw::TlbEntry entry = cpu1_reads(kRegion);
  ASSERT_EQ(space_->protect(mm::VirtAddr(kRegion + 0x1000), mm::kPageSize, mm::Prot::Read), mm::Status::Ok);
  EXPECT_FALSE(cpu1_hits(kRegion + 0x8, entry));
  EXPECT_FALSE(cpu1_hits(kRegion + 0x2000, entry));
  const std::optional<emu::Violation> v = cpu1_hits(kRegion + 0x1008, entry);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O4");
  EXPECT_EQ(v->cpu, 1u);
  EXPECT_EQ(v->message,
            "cpu 1 hit a stale TLB entry for 0x40001008 (its 2 MiB entry for 0x40000000) with no shootdown pending: it "
            "allows writes the page tables forbid");
}

// O1 looks at every frame a large entry reaches, not only its first.
TEST_F(OracleTest, FreeingAFrameInsideALargeEntryIsO1) {
  as_cpu(1);
  machine_->cpu(1).tlb.insert(hw::TlbEntry{.page = 0x6000'0000, .frame = 0x20'0000, .size = hw::PageSize::Size2M,
                                           .pcid = machine_->cpu(1).cr.pcid(), .global = false,
                                           .rights = hw::Permissions{}, .dirty = false},
                              hw::AccessKind::Read);
  as_cpu(0);
  machine_->oracle()->frames_freed(0x3F'F000, 1);
  const std::optional<emu::Violation> v = machine_->violation();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O1");
  EXPECT_NE(v->message.find("frame 0x3ff000 was freed while cpu 1 can still reach it through 0x60000000"),
            std::string::npos)
      << v->message;
}

// O6: a space takes a copy-on-write frame in place (a write fault that
// makes it its own without copying) while CPU 1 still holds a translation
// of another space to it. CPU 1 runs space s and caches its anonymous page;
// space t taking that frame is the violation, s taking it is not (its own
// CPU's entry is its own translation).
TEST_F(OracleTest, TakingAFrameAnotherSpaceStillReachesIsO6) {
  const hw::TlbEntry entry = cpu1_reads(kAnon);
  ASSERT_EQ(machine_->create_space("t"), mm::Status::Ok);
  emu::EmuSpace* other = machine_->space("t");
  ASSERT_NE(other, nullptr);

  machine_->oracle()->frame_taken(&space_->tlb_context(), entry.frame);
  EXPECT_FALSE(machine_->violation()) << machine_->violation()->message;

  machine_->oracle()->frame_taken(&other->tlb_context(), entry.frame + 0x10);
  const std::optional<emu::Violation> v = machine_->violation();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->invariant, "O6");
  EXPECT_NE(v->message.find(fmt::format("frame {:#x} was taken in place by one space while cpu 1 can still reach it "
                                        "through {:#x}",
                                        entry.frame + 0x10, kAnon)),
            std::string::npos)
      << v->message;
}

}  // namespace
