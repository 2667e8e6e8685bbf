// ObjectPool<T>: fixed-size objects carved from frames of PhysicalMemory (a
// slab, in the kernel's sense). The core's only dynamic objects (regions)
// come from here, so it needs no heap of its own.
//
// Each slab is one frame: a header, then as many T slots as fit. Free slots
// are threaded on a free list; a slab whose objects are all free goes back to
// PhysicalMemory. Not synchronized: the owner locks.
#pragma once

#include <new>

#include "mm/phys/physical_memory.hpp"

namespace mm {

template <typename T, Platform P>
class ObjectPool {
  struct FreeSlot {
    FreeSlot* next;
  };
  struct Slab {
    Slab* next;
    Slab* prev;
    FreeSlot* free;
    u32 used;
    PhysAddr frame;
  };
  static constexpr usize kSlotSize = sizeof(T) > sizeof(FreeSlot) ? sizeof(T) : sizeof(FreeSlot);
  static constexpr usize kSlotAlign = alignof(T) > alignof(FreeSlot) ? alignof(T) : alignof(FreeSlot);
  static constexpr usize kFirstSlot = align_up(sizeof(Slab), kSlotAlign);
  static constexpr usize kSlotStride = align_up(kSlotSize, kSlotAlign);

 public:
  static constexpr u32 kPerSlab = static_cast<u32>((kPageSize - kFirstSlot) / kSlotStride);
  static_assert(kPerSlab >= 8, "objects this large want a different allocator");

  ObjectPool(P& platform, PhysicalMemory<P>& memory) : platform_(platform), memory_(memory) {}
  ~ObjectPool() { MM_ASSERT(live_ == 0); }
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // A default-constructed T, or ENOMEM.
  Result<T*> allocate() {
    if (partial_ == nullptr) {
      MM_TRY(grow());
    }
    Slab* slab = partial_;
    FreeSlot* slot = slab->free;
    slab->free = slot->next;
    ++slab->used;
    ++live_;
    if (slab->free == nullptr) {
      unlink(partial_, slab);
      push(full_, slab);
    }
    return new (slot) T();
  }

  void free(T* object) {
    object->~T();
    Slab* slab = slab_of(object);
    auto* slot = reinterpret_cast<FreeSlot*>(object);
    const bool was_full = slab->free == nullptr;
    slot->next = slab->free;
    slab->free = slot;
    --slab->used;
    --live_;
    if (was_full) {
      unlink(full_, slab);
      push(partial_, slab);
    }
    if (slab->used == 0) {
      unlink(partial_, slab);
      const Status freed = memory_.free_frame(slab->frame);
      MM_ASSERT(freed == Status::Ok);
      --slabs_;
    }
  }

  u64 live() const { return live_; }
  u64 slabs() const { return slabs_; }

 private:
  Slab* slab_of(T* object) const {
    return reinterpret_cast<Slab*>(align_down(reinterpret_cast<u64>(object), kPageSize));
  }

  Status grow() {
    const PhysAddr frame = MM_TRY(memory_.allocate_frame(FrameOwner::Kernel));
    auto* bytes = reinterpret_cast<u8*>(platform_.direct_map(frame));
    MM_ASSERT((reinterpret_cast<u64>(bytes) & kPageMask) == 0);
    auto* slab = new (bytes) Slab{nullptr, nullptr, nullptr, 0, frame};
    for (u32 i = kPerSlab; i-- > 0;) {
      auto* slot = reinterpret_cast<FreeSlot*>(bytes + kFirstSlot + i * kSlotStride);
      slot->next = slab->free;
      slab->free = slot;
    }
    push(partial_, slab);
    ++slabs_;
    return Status::Ok;
  }

  static void push(Slab*& list, Slab* slab) {
    slab->prev = nullptr;
    slab->next = list;
    if (list) list->prev = slab;
    list = slab;
  }
  static void unlink(Slab*& list, Slab* slab) {
    if (slab->prev) slab->prev->next = slab->next;
    else list = slab->next;
    if (slab->next) slab->next->prev = slab->prev;
    slab->next = slab->prev = nullptr;
  }

  P& platform_;
  PhysicalMemory<P>& memory_;
  Slab* partial_ = nullptr;
  Slab* full_ = nullptr;
  u64 live_ = 0;
  u64 slabs_ = 0;
};

}  // namespace mm
