// The boot memory map: what the firmware or bootloader says about physical
// memory, cleaned up into sorted, page-aligned, non-overlapping ranges of one
// kind each, from which the frame allocators are seeded.
//
// Firmware maps are messy: entries come in any order, with unaligned edges,
// overlapping one another. Ingestion resolves them by these rules:
//  - usable kinds (Free, Reclaimable) are trimmed inward to whole frames;
//    the others are widened outward, so a partly reserved frame is reserved;
//  - where entries overlap, the more restrictive kind wins
//    (Free < Reclaimable < Kernel < Reserved < Device);
//  - nothing below 1 MiB is ever Free (frame 0, real-mode IVT, BIOS data,
//    the SMP trampoline live there): it becomes Reserved;
//  - anything at or above 2^52 (the x86-64 physical address limit) is dropped.
#pragma once

#include "mm/base/span.hpp"

#include "mm/base/status.hpp"
#include "mm/phys/frame_allocator.hpp"

namespace mm {

// Ordered by restrictiveness: on overlap the larger value wins.
enum class MemoryKind : u8 {
  Free,         // usable RAM
  Reclaimable,  // RAM in use during boot (ACPI tables, bootloader data), usable later
  Kernel,       // the kernel image, boot modules, the frame table itself
  Reserved,     // firmware-owned RAM, or anything the core must not touch
  Device,       // memory-mapped I/O; not RAM at all
};

const char* memory_kind_name(MemoryKind kind);

struct MemoryRange {
  PhysAddr base;
  u64 length = 0;
  MemoryKind kind = MemoryKind::Reserved;

  u64 end() const { return base.value() + length; }
};

inline constexpr u64 kLowMemoryEnd = 1 << 20;  // 1 MiB

class MemoryMap {
 public:
  static constexpr usize kMaxInputRanges = 64;
  static constexpr usize kMaxRanges = 2 * kMaxInputRanges + 2;

  // Builds the map from raw entries. On success *this holds the result; on
  // failure *this is unchanged and, where one entry is at fault,
  // rejected_entry() names its index. E2BIG for more than kMaxInputRanges
  // entries, EINVAL for an entry whose end wraps past 2^64, ENOMEM when no
  // usable RAM remains at or above 1 MiB.
  Status ingest(Span<const MemoryRange> raw);

  Span<const MemoryRange> ranges() const { return {ranges_, count_}; }
  usize rejected_entry() const { return rejected_entry_; }

  FrameCount frames_of(MemoryKind kind) const;
  // The lowest Free frame and one past the highest: the span a frame table covers.
  Pfn first_usable() const;
  Pfn end_usable() const;

  // Where take_for_kernel carves from.
  enum class Placement : u8 {
    Top,     // the top of the highest Free range that fits
    Bottom,  // the bottom of the lowest (for early page tables: low memory is mapped first)
  };

  // Takes `frames` frames of Free memory and turns them into Kernel memory
  // (for the frame table and other boot-time structures). ENOMEM if no Free
  // range is large enough, E2BIG if the map has no room for another range.
  Result<Pfn> take_for_kernel(FrameCount frames, Placement placement = Placement::Top);

  // Hands every Free range to the allocator, clipped to its table.
  Status seed(FrameAllocator& allocator, const FrameTable& table) const;

 private:
  void append(u64 base, u64 end, MemoryKind kind);
  // Re-kinds [base, base + length) inside range i as Kernel, splitting it.
  Status carve(usize i, u64 base, u64 length);
  void insert_at(usize i, const MemoryRange& range);
  void erase_at(usize i);
  void merge_neighbours();

  MemoryRange ranges_[kMaxRanges];
  usize count_ = 0;
  usize rejected_entry_ = 0;
};

}  // namespace mm
