// PlatformArchetype: the least a type can be and still model mm::Platform.
// Its members are declared, never defined. The freestanding build target
// instantiates the core's templates with it, which proves two things with the
// kernel's compiler flags: the templates compile freestanding, and they use
// nothing of their platform beyond what the concept promises.
#pragma once

#include "mm/platform/platform.hpp"

namespace mm {

class PlatformArchetype {
 public:
  class MM_CAPABILITY("spinlock") SpinLock {
   public:
    explicit SpinLock(LockClass lock_class);
    void lock() MM_ACQUIRE();
    void unlock() MM_RELEASE();
    bool try_lock() MM_TRY_ACQUIRE(true);
  };

  std::byte* direct_map(PhysAddr address) const;
  CpuId current_cpu() const;
  u32 cpu_count() const;
  void invalidate_page(VirtAddr page);
  void flush_pcid(Pcid pcid);
  void flush_all();
  void load_address_space(PhysAddr root, Pcid pcid, CrFlush flush);
  u64 pte_load(const u64* entry);
  void pte_store(u64* entry, u64 value);
  bool pte_compare_exchange(u64* entry, u64& expected, u64 desired);
  void send_ipi(CpuSet targets);
  void relax();
  void enter_cpu_section(LockClass lock_class, const LockSite& site);
  void leave_cpu_section();
  void synchronize_cpus();
  void log(LogLevel level, const char* text);
};

static_assert(Platform<PlatformArchetype>);

}  // namespace mm
