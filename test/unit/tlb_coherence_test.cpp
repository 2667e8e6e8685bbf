// TlbCoherence on a scripted machine: one host thread plays every CPU. The
// platform records what each CPU's TLB was told to do, and relax() (called
// by a waiting initiator) runs whatever the test scheduled to happen
// meanwhile on other CPUs: usually taking the shootdown interrupt, sometimes
// a shootdown of their own, so that queues fill up.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "mm/paging/tlb_coherence.hpp"

namespace {

using mm::CpuId;
using mm::CpuSet;
using mm::Pcid;
using mm::PhysAddr;
using mm::ShootdownPolicy;
using mm::TlbCoherence;
using mm::TlbCoherenceConfig;
using mm::TlbContext;
using mm::u64;
using mm::VirtAddr;

class ScriptedPlatform {
 public:
  struct SpinLock {
    explicit SpinLock(mm::LockClass) {}
    bool held = false;
    void lock() {
      ASSERT_FALSE(held) << "a lock was taken twice";
      held = true;
    }
    void unlock() { held = false; }
    bool try_lock() { return held ? false : (held = true); }
  };

  std::byte* direct_map(PhysAddr) const { return nullptr; }
  CpuId current_cpu() const { return cpu; }
  mm::u32 cpu_count() const { return cpus; }
  void invalidate_page(VirtAddr page) { record("invlpg " + std::to_string(page.value() >> 12)); }
  void flush_pcid(Pcid pcid) { record("flush pcid " + std::to_string(pcid.value)); }
  void flush_all() { record("flush all"); }
  void load_address_space(PhysAddr root, Pcid pcid, mm::CrFlush flush) {
    record("cr3 " + std::to_string(root.value() >> 12) + " pcid " + std::to_string(pcid.value) +
           (flush == mm::CrFlush::Yes ? " flush" : " keep"));
  }
  u64 pte_load(const u64* entry) { return *entry; }
  void pte_store(u64* entry, u64 value) { *entry = value; }
  bool pte_compare_exchange(u64* entry, u64& expected, u64 desired) {
    if (*entry != expected) {
      expected = *entry;
      return false;
    }
    *entry = desired;
    return true;
  }
  void send_ipi(CpuSet targets) { ipis.push_back(targets.bits()); }
  void relax() {
    if (++relaxes > 1000) {
      ADD_FAILURE() << "an initiator waits forever";
      std::abort();
    }
    if (on_relax) {
      auto step = std::move(on_relax);
      on_relax = nullptr;
      step();
    }
  }
  // One thread plays every CPU: nothing to keep out, nothing to fence.
  void enter_cpu_section(mm::LockClass, const mm::LockSite&) {}
  void leave_cpu_section() {}
  void synchronize_cpus() {}
  void log(mm::LogLevel, const char*) {}

  // Runs f as `other`, then comes back.
  template <typename F>
  void as(CpuId other, F&& f) {
    const CpuId saved = cpu;
    cpu = other;
    f();
    cpu = saved;
  }

  CpuId cpu = 0;
  mm::u32 cpus = 4;
  std::vector<std::string> log_[mm::kMaxCpus];
  std::vector<u64> ipis;
  std::function<void()> on_relax;
  int relaxes = 0;

 private:
  void record(std::string what) { log_[cpu].push_back(std::move(what)); }
};

static_assert(mm::Platform<ScriptedPlatform>);

class TlbCoherenceTest : public ::testing::Test {
 protected:
  void make(TlbCoherenceConfig config) {
    coherence = std::make_unique<TlbCoherence<ScriptedPlatform>>(platform, config);
    for (CpuId c = 0; c < platform.cpus; ++c) platform.as(c, [&] { coherence->cpu_online(); });
  }
  std::vector<std::string>& log(CpuId cpu) { return platform.log_[cpu]; }
  void clear_logs() {
    for (auto& l : platform.log_) l.clear();
    platform.ipis.clear();
  }
  void run_on(CpuId cpu, TlbContext& context, u64 root) {
    platform.as(cpu, [&] { EXPECT_TRUE(coherence->switch_to(context, PhysAddr(root))); });
  }
  // CPU `initiator` shoots down `pages` of `context`; while it waits, each CPU
  // in `responders` takes its interrupt, in order.
  void shootdown(CpuId initiator, TlbContext& context, std::vector<u64> pages, std::vector<CpuId> responders) {
    schedule_responses(responders);
    platform.as(initiator, [&] {
      coherence->shootdown(&context, pages.data(), static_cast<mm::u32>(pages.size()), false, false);
    });
  }
  void schedule_responses(std::vector<CpuId> responders) {
    if (responders.empty()) return;
    platform.on_relax = [this, responders] {
      platform.as(responders.front(), [&] { coherence->handle_ipi(); });
      schedule_responses(std::vector<CpuId>(responders.begin() + 1, responders.end()));
    };
  }

  ScriptedPlatform platform;
  std::unique_ptr<TlbCoherence<ScriptedPlatform>> coherence;
  TlbContext a, b;
};

TEST_F(TlbCoherenceTest, IpisGoOnlyToCpusRunningTheSpaceAndEachInvalidates) {
  make({});
  run_on(0, a, 0x1000);
  run_on(1, a, 0x1000);
  run_on(2, b, 0x2000);
  clear_logs();
  shootdown(0, a, {0x400000, 0x401000}, {1});
  ASSERT_EQ(platform.ipis.size(), 1u);
  EXPECT_EQ(platform.ipis[0], CpuSet::of(1).bits());  // not CPU 2 (runs b), not itself
  EXPECT_EQ(log(0), (std::vector<std::string>{"invlpg 1024", "invlpg 1025"}));
  EXPECT_EQ(log(1), (std::vector<std::string>{"invlpg 1024", "invlpg 1025"}));
  EXPECT_TRUE(log(2).empty());
  EXPECT_FALSE(coherence->request_pending(1));
  const mm::ShootdownStats stats = coherence->stats();
  EXPECT_EQ(stats.shootdowns, 1u);
  EXPECT_EQ(stats.ipis, 1u);
  EXPECT_EQ(stats.pages_invalidated, 4u);  // two pages on two CPUs
}

TEST_F(TlbCoherenceTest, InitiatorThatDoesNotRunTheSpaceLeavesItsTlbAlone) {
  make({});
  run_on(1, a, 0x1000);
  run_on(0, b, 0x2000);
  clear_logs();
  shootdown(0, a, {0x400000}, {1});
  EXPECT_TRUE(log(0).empty());  // an INVLPG on CPU 0 would hit b's translations
  EXPECT_EQ(log(1), (std::vector<std::string>{"invlpg 1024"}));
}

TEST_F(TlbCoherenceTest, InitiatorWaitsForEveryAcknowledgement) {
  make({});
  for (CpuId c = 0; c < 4; ++c) run_on(c, a, 0x1000);
  clear_logs();
  bool returned = false;
  std::vector<u64> page{0x400000};
  // CPU 2 answers only after CPUs 3 and 1: the wait covers all three.
  platform.on_relax = [&] {
    platform.as(3, [&] { coherence->handle_ipi(); });
    platform.on_relax = [&] {
      platform.as(1, [&] { coherence->handle_ipi(); });
      EXPECT_FALSE(returned);
      platform.on_relax = [&] { platform.as(2, [&] { coherence->handle_ipi(); }); };
    };
  };
  platform.as(0, [&] { coherence->shootdown(&a, page.data(), 1, false, false); });
  returned = true;
  for (CpuId c = 1; c < 4; ++c) {
    EXPECT_FALSE(coherence->request_pending(c)) << c;
    EXPECT_EQ(log(c), (std::vector<std::string>{"invlpg 1024"})) << c;
  }
  EXPECT_GE(platform.relaxes, 3);
}

TEST_F(TlbCoherenceTest, PastTheThresholdARequestIsAFullFlushOfThePcid) {
  make({.policy = ShootdownPolicy::Batched, .flush_threshold = 2, .pcid = true});
  run_on(0, a, 0x1000);
  run_on(1, a, 0x1000);
  clear_logs();
  shootdown(0, a, {0x400000, 0x401000, 0x402000}, {1});
  EXPECT_EQ(log(0), (std::vector<std::string>{"flush pcid 1"}));
  EXPECT_EQ(log(1), (std::vector<std::string>{"flush pcid 1"}));
  EXPECT_EQ(coherence->stats().full_flushes, 2u);
}

TEST_F(TlbCoherenceTest, EverywhereFlushesAllOnEveryOnlineCpu) {
  make({});
  run_on(1, a, 0x1000);
  run_on(2, b, 0x2000);
  platform.as(3, [&] { coherence->cpu_offline(); });
  clear_logs();
  schedule_responses({1, 2});
  platform.as(0, [&] { coherence->shootdown(&a, nullptr, 0, true, true); });
  ASSERT_EQ(platform.ipis.size(), 1u);
  EXPECT_EQ(platform.ipis[0], CpuSet::of(1).with(2).bits());  // not the offline CPU 3
  for (CpuId c : {0u, 1u, 2u}) EXPECT_EQ(log(c), (std::vector<std::string>{"flush all"})) << c;
  EXPECT_TRUE(log(3).empty());
}

TEST_F(TlbCoherenceTest, AFullQueueDegradesToOneFullFlush) {
  platform.cpus = 20;
  make({});
  // CPU 1 runs every space; CPUs 2..18 each start a shootdown of their own
  // space while the previous initiator waits, so 17 requests pile up on CPU 1.
  std::vector<TlbContext> spaces(20);
  for (CpuId c = 2; c < 19; ++c) run_on(c, spaces[c], 0x1000 * c);
  run_on(1, spaces[2], 0x2000);
  for (CpuId c = 2; c < 19; ++c) spaces[c].active.store(spaces[c].active.load() | 2);  // CPU 1 counted active in each
  clear_logs();
  std::vector<u64> page{0x400000};
  std::function<void(CpuId)> start = [&](CpuId c) {
    if (c == 19) {
      platform.as(1, [&] { coherence->handle_ipi(); });  // finally, CPU 1 answers all at once
      return;
    }
    platform.on_relax = [&, c] { start(c + 1); };
    platform.as(c, [&] { coherence->shootdown(&spaces[c], page.data(), 1, false, false); });
  };
  start(2);
  EXPECT_EQ(coherence->stats().queue_overflows, 1u);  // the 17th request
  EXPECT_EQ(log(1), (std::vector<std::string>{"flush all"}));
  EXPECT_FALSE(coherence->request_pending(1));
}

TEST_F(TlbCoherenceTest, TwoInitiatorsShootingAtEachOtherBothFinish) {
  make({});
  run_on(0, a, 0x1000);
  run_on(1, a, 0x1000);
  clear_logs();
  std::vector<u64> p0{0x400000}, p1{0x500000};
  // While CPU 0 waits for CPU 1, CPU 1 (its lock held, interrupts off)
  // starts a shootdown of its own; each answers the other from its wait
  // loop: CPU 1 finds CPU 0's request in its own queue, CPU 0 (polling)
  // answers CPU 1's.
  platform.on_relax = [&] {
    schedule_responses({0});
    platform.as(1, [&] { coherence->shootdown(&a, p1.data(), 1, false, false); });
  };
  platform.as(0, [&] { coherence->shootdown(&a, p0.data(), 1, false, false); });
  EXPECT_FALSE(coherence->request_pending(0));
  EXPECT_FALSE(coherence->request_pending(1));
  EXPECT_EQ(coherence->stats().shootdowns, 2u);
}

TEST_F(TlbCoherenceTest, PcidSlotsKeepTranslationsAcrossSwitchesUntilTheGenerationMoves) {
  make({.policy = ShootdownPolicy::Batched, .flush_threshold = 32, .pcid = true});
  clear_logs();
  run_on(1, a, 0x1000);
  run_on(1, b, 0x2000);
  run_on(1, a, 0x1000);  // a's slot is current: keep
  EXPECT_EQ(log(1), (std::vector<std::string>{"cr3 1 pcid 1 flush", "cr3 2 pcid 2 flush", "cr3 1 pcid 1 keep"}));
  EXPECT_EQ(coherence->usable_context(1, Pcid{2}), &b);  // b's translations may be loaded without a flush
  run_on(1, b, 0x2000);
  clear_logs();
  // CPU 0 shoots down a while CPU 1 runs b: no IPI, but a's generation moves.
  shootdown(0, a, {0x400000}, {});
  EXPECT_TRUE(platform.ipis.empty());
  EXPECT_EQ(coherence->usable_context(1, Pcid{1}), nullptr);  // stale: it will be flushed first
  run_on(1, a, 0x1000);
  EXPECT_EQ(log(1), (std::vector<std::string>{"cr3 1 pcid 1 flush"}));
}

TEST_F(TlbCoherenceTest, UnsafeActiveOnlyReusesAStalePcid) {
  make({.policy = ShootdownPolicy::UnsafeActiveOnly, .flush_threshold = 32, .pcid = true});
  run_on(1, a, 0x1000);
  run_on(1, b, 0x2000);
  shootdown(0, a, {0x400000}, {});
  EXPECT_EQ(coherence->usable_context(1, Pcid{1}), &a);  // the oracle counts it: the bug
  clear_logs();
  run_on(1, a, 0x1000);
  EXPECT_EQ(log(1), (std::vector<std::string>{"cr3 1 pcid 1 keep"}));
}

TEST_F(TlbCoherenceTest, TheLeastRecentlyAssignedSlotIsReusedWithAFlush) {
  make({.policy = ShootdownPolicy::Batched, .flush_threshold = 32, .pcid = true});
  std::vector<TlbContext> spaces(TlbCoherence<ScriptedPlatform>::kPcidSlots + 1);
  for (std::size_t i = 0; i < spaces.size(); ++i) run_on(1, spaces[i], 0x1000 * (i + 1));
  EXPECT_EQ(coherence->usable_context(1, Pcid{1}), &spaces.back());  // slot 1 went to the seventh space
  clear_logs();
  run_on(1, spaces[0], 0x1000);  // lost its slot: a fresh one, flushed
  EXPECT_EQ(log(1), (std::vector<std::string>{"cr3 1 pcid 2 flush"}));
}

TEST_F(TlbCoherenceTest, UnsafePoliciesSkipWhatTheyName) {
  make({.policy = ShootdownPolicy::UnsafeLocalOnly});
  run_on(0, a, 0x1000);
  run_on(1, a, 0x1000);
  clear_logs();
  shootdown(0, a, {0x400000}, {});
  EXPECT_TRUE(platform.ipis.empty());
  EXPECT_EQ(log(0), (std::vector<std::string>{"invlpg 1024"}));
  EXPECT_TRUE(log(1).empty());

  make({.policy = ShootdownPolicy::UnsafeNoFlush});
  run_on(0, a, 0x1000);
  clear_logs();
  shootdown(0, a, {0x400000}, {});
  EXPECT_TRUE(log(0).empty());
}

TEST_F(TlbCoherenceTest, RetireForgetsTheSpaceInEverySlot) {
  make({.policy = ShootdownPolicy::Batched, .flush_threshold = 32, .pcid = true});
  run_on(1, a, 0x1000);
  run_on(1, b, 0x2000);
  run_on(2, a, 0x1000);
  run_on(2, b, 0x2000);
  coherence->retire(a);
  EXPECT_EQ(coherence->usable_context(1, Pcid{1}), nullptr);
  EXPECT_EQ(coherence->usable_context(2, Pcid{1}), nullptr);
  EXPECT_EQ(coherence->usable_context(1, Pcid{2}), &b);
}

}  // namespace
