// TLB shootdown latency on the emulated machine in parallel mode: CPU 0
// invalidates one page of a space that every CPU runs and waits until each
// of the others has taken the IPI, invalidated and acknowledged (what an
// unmap of one page costs on top of its page-table work). The other CPUs sit
// in an idle loop that takes interrupts, as a real idle CPU would.
//
// With more CPU threads than host cores the figures measure the host's
// scheduler as much as the protocol: record them with the core count.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>
#include <vector>

#include "emu/machine/machine.hpp"

namespace pagelab::bench {
namespace {

void BM_Shootdown(benchmark::State& state) {
  const auto cpus = static_cast<std::uint32_t>(state.range(0));
  std::string error;
  std::unique_ptr<emu::Trace> trace = emu::Trace::open(emu::TraceFormat::Text, "", {}, false, error);
  emu::MachineConfig config;
  config.cpus = cpus;
  config.ram_bytes = std::uint64_t{16} << 20;
  config.schedule.deterministic = false;
  std::unique_ptr<emu::Machine> machine = emu::Machine::create(config, *trace, error);
  if (!machine || machine->create_space("s") != mm::Status::Ok) {
    state.SkipWithError("no machine");
    return;
  }
  emu::EmuSpace& space = *machine->space("s");
  const mm::u64 page = 0x10000000;
  (void)space.map(mm::MapRequest{.address = mm::VirtAddr(page), .length = mm::kPageSize, .populate = true});

  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> ready{0};
  const bool oversubscribed = cpus > std::thread::hardware_concurrency();
  std::vector<std::thread> idle;
  for (std::uint32_t cpu = 1; cpu < cpus; ++cpu) {
    idle.emplace_back([&, cpu] {
      emu::cpu_context = emu::CpuContext{machine.get(), cpu, false};
      machine->cpu_online();
      (void)machine->use_space("s");
      ready.fetch_add(1);
      while (!stop.load(std::memory_order_relaxed)) {
        machine->take_interrupts();
        if (oversubscribed) std::this_thread::yield();
      }
      machine->cpu_offline();
    });
  }
  emu::cpu_context = emu::CpuContext{machine.get(), 0, false};
  machine->cpu_online();
  (void)machine->use_space("s");
  while (ready.load() != cpus - 1) std::this_thread::yield();

  auto& coherence = machine->vm().coherence();
  const mm::ShootdownStats before = coherence.stats();
  for (auto _ : state) {
    coherence.shootdown(&space.tlb_context(), &page, 1, false, false);
  }
  const mm::ShootdownStats after = coherence.stats();
  stop.store(true);
  for (auto& t : idle) t.join();
  machine->cpu_offline();
  const double batches = static_cast<double>(after.shootdowns + after.local_flushes - before.shootdowns - before.local_flushes);
  state.counters["ipis_per_batch"] = batches > 0 ? static_cast<double>(after.ipis - before.ipis) / batches : 0;
  state.counters["host_cores"] = std::thread::hardware_concurrency();
}
BENCHMARK(BM_Shootdown)->DenseRange(1, 4)->Arg(8)->Arg(16)->UseRealTime();

}  // namespace
}  // namespace pagelab::bench
