// pagelab's buddy allocator against a peer, side by side in one run: the
// header-only buddy_alloc (github.com/spaskalev/buddy_alloc), built from a
// checkout the user names (bench/peers/buddy_alloc.sh). None of the peer's
// code is in this tree; this file only calls its public functions.
//
// Both allocators get the same pool: 65,536 frames (256 MiB), brought by
// the same fill-and-punch recipe (bench/fragmented_pool.hpp, the same seed)
// to about 50% allocated in scattered blocks before any timing. The peer
// manages a 256 MiB arena with 4 KiB as its smallest block, its metadata
// outside the arena, and its blocks stand for frames (frame = offset / 4 KiB);
// it never touches the arena's bytes, so the arena is only reserved.
//
//   BM_Peer_Ours/<order>   BuddyAllocator::allocate_order + free_order
//   BM_Peer_BuddyAlloc/<order> buddy_malloc(4 KiB << order) + buddy_free
//
// at orders 0, 3 and 9: the hot pair, as BM_Buddy_AllocFree measures it.
#include <benchmark/benchmark.h>

#include <sys/mman.h>

#include <memory>
#include <string>
#include <vector>

#define BUDDY_ALLOC_IMPLEMENTATION
#include "buddy_alloc.h"

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

constexpr std::size_t kArenaBytes = std::size_t{kPoolFrames} * mm::kPageSize;

// The peer, over an arena of kPoolFrames frames, in the recipe's terms.
class PeerBuddy {
 public:
  PeerBuddy() {
    void* arena = ::mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) return;
    arena_ = static_cast<unsigned char*>(arena);
    metadata_.resize(buddy_sizeof_alignment(kArenaBytes, mm::kPageSize));
    buddy_ = buddy_init_alignment(metadata_.data(), arena_, kArenaBytes, mm::kPageSize);
  }
  ~PeerBuddy() {
    if (arena_ != nullptr) ::munmap(arena_, kArenaBytes);
  }
  PeerBuddy(const PeerBuddy&) = delete;
  PeerBuddy& operator=(const PeerBuddy&) = delete;

  bool ok() const { return buddy_ != nullptr; }
  void* allocate(mm::u32 order) { return buddy_malloc(buddy_, mm::kPageSize << order); }
  void free(void* block) { buddy_free(buddy_, block); }
  mm::Pfn pfn_of(const void* block) const {
    return mm::Pfn(static_cast<mm::u64>(static_cast<const unsigned char*>(block) - arena_) / mm::kPageSize);
  }
  void* block_of(mm::Pfn pfn) const { return arena_ + pfn.value() * mm::kPageSize; }

 private:
  unsigned char* arena_ = nullptr;
  std::vector<unsigned char> metadata_;
  struct buddy* buddy_ = nullptr;
};

struct PeerOps {
  static constexpr mm::u32 kMaxOrder = OrderMix::kMaxOrder;
  PeerBuddy& peer;

  mm::Result<mm::Pfn> allocate(mm::u32 order) {
    void* block = peer.allocate(order);
    if (block == nullptr) return mm::Status::OutOfMemory;
    return peer.pfn_of(block);
  }
  mm::Status free(mm::Pfn first, mm::u32) {
    peer.free(peer.block_of(first));
    return mm::Status::Ok;
  }
};

void BM_Peer_BuddyAlloc(benchmark::State& state) {
  auto peer = std::make_unique<PeerBuddy>();
  std::mt19937_64 rng(kPoolSeed);
  std::vector<LiveBlock> live;
  if (!peer->ok() || fragment(PeerOps{*peer}, kPoolFrames, rng, live) != mm::Status::Ok) {
    state.SkipWithError("building the peer's fragmented pool failed");
    return;
  }
  const auto order = static_cast<mm::u32>(state.range(0));
  for (auto _ : state) {
    void* block = peer->allocate(order);
    benchmark::DoNotOptimize(block);
    if (block == nullptr) [[unlikely]] {
      state.SkipWithError("the peer failed an allocation");
      break;
    }
    peer->free(block);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Peer_BuddyAlloc)->Arg(0)->Arg(3)->Arg(9);

}  // namespace
}  // namespace pagelab::bench
