#include "mm/phys/memory_map.hpp"

namespace mm {

namespace {

struct AlignedEntry {
  u64 base;
  u64 end;
  MemoryKind kind;
};

bool is_usable(MemoryKind kind) { return kind == MemoryKind::Free || kind == MemoryKind::Reclaimable; }

void insertion_sort(u64* values, usize count) {
  for (usize i = 1; i < count; ++i) {
    const u64 v = values[i];
    usize j = i;
    while (j > 0 && values[j - 1] > v) {
      values[j] = values[j - 1];
      --j;
    }
    values[j] = v;
  }
}

}  // namespace

const char* memory_kind_name(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::Free: return "free";
    case MemoryKind::Reclaimable: return "reclaimable";
    case MemoryKind::Kernel: return "kernel";
    case MemoryKind::Reserved: return "reserved";
    case MemoryKind::Device: return "device";
  }
  return "?";
}

Status MemoryMap::ingest(Span<const MemoryRange> raw) {
  if (raw.size() > kMaxInputRanges) {
    rejected_entry_ = kMaxInputRanges;
    return Status::TooBig;
  }

  // 1. Validate, clip to the physical address limit, align by kind.
  AlignedEntry entries[kMaxInputRanges];
  usize entry_count = 0;
  for (usize i = 0; i < raw.size(); ++i) {
    const MemoryRange& r = raw[i];
    if (r.length == 0) {
      continue;
    }
    u64 base = r.base.value();
    u64 end = 0;
    // Wrapping is an error, except an entry that ends exactly at 2^64.
    if (__builtin_add_overflow(base, r.length, &end) && end != 0) {
      rejected_entry_ = i;
      return Status::InvalidArgument;
    }
    if (end == 0 || end > kMaxPhysAddr) {
      end = kMaxPhysAddr;
    }
    if (base >= end) {
      continue;
    }
    if (is_usable(r.kind)) {
      base = align_up(base, kPageSize);
      end = align_down(end, kPageSize);
    } else {
      base = align_down(base, kPageSize);
      end = align_up(end, kPageSize);
    }
    if (base >= end) {
      continue;
    }
    entries[entry_count++] = {base, end, r.kind};
  }

  // 2. Every boundary, plus 1 MiB so no interval straddles it.
  u64 points[2 * kMaxInputRanges + 1];
  usize point_count = 0;
  for (usize i = 0; i < entry_count; ++i) {
    points[point_count++] = entries[i].base;
    points[point_count++] = entries[i].end;
  }
  points[point_count++] = kLowMemoryEnd;
  insertion_sort(points, point_count);

  // 3. Each elementary interval takes the most restrictive covering kind.
  MemoryMap result;
  for (usize p = 0; p + 1 < point_count; ++p) {
    const u64 a = points[p];
    const u64 b = points[p + 1];
    if (a == b) {
      continue;
    }
    bool covered = false;
    MemoryKind kind = MemoryKind::Free;
    for (usize i = 0; i < entry_count; ++i) {
      if (entries[i].base <= a && entries[i].end >= b) {
        kind = !covered || entries[i].kind > kind ? entries[i].kind : kind;
        covered = true;
      }
    }
    if (!covered) {
      continue;
    }
    if (kind == MemoryKind::Free && a < kLowMemoryEnd) {
      kind = MemoryKind::Reserved;
    }
    result.append(a, b, kind);
  }

  if (result.frames_of(MemoryKind::Free) == 0) {
    rejected_entry_ = raw.size();
    return Status::OutOfMemory;
  }
  result.rejected_entry_ = 0;
  *this = result;
  return Status::Ok;
}

void MemoryMap::append(u64 base, u64 end, MemoryKind kind) {
  if (count_ > 0) {
    MemoryRange& last = ranges_[count_ - 1];
    if (last.kind == kind && last.end() == base) {
      last.length += end - base;
      return;
    }
  }
  MM_ASSERT(count_ < kMaxRanges);
  ranges_[count_++] = MemoryRange{PhysAddr(base), end - base, kind};
}

FrameCount MemoryMap::frames_of(MemoryKind kind) const {
  FrameCount frames = 0;
  for (usize i = 0; i < count_; ++i) {
    if (ranges_[i].kind == kind) {
      frames += ranges_[i].length / kPageSize;
    }
  }
  return frames;
}

Pfn MemoryMap::first_usable() const {
  for (usize i = 0; i < count_; ++i) {
    if (ranges_[i].kind == MemoryKind::Free) {
      return Pfn::containing(ranges_[i].base);
    }
  }
  return Pfn(0);
}

Pfn MemoryMap::end_usable() const {
  for (usize i = count_; i-- > 0;) {
    if (ranges_[i].kind == MemoryKind::Free) {
      return Pfn::containing(PhysAddr(ranges_[i].end()));
    }
  }
  return Pfn(0);
}

Result<Pfn> MemoryMap::take_for_kernel(FrameCount frames, Placement placement) {
  if (frames == 0) {
    return Status::InvalidArgument;
  }
  const u64 bytes = frames * kPageSize;
  for (usize n = 0; n < count_; ++n) {
    const usize i = placement == Placement::Top ? count_ - 1 - n : n;
    const MemoryRange r = ranges_[i];
    if (r.kind != MemoryKind::Free || r.length < bytes) {
      continue;
    }
    const u64 base = placement == Placement::Top ? r.end() - bytes : r.base.value();
    MM_TRY(carve(i, base, bytes));
    return Pfn::containing(PhysAddr(base));
  }
  return Status::OutOfMemory;
}

Status MemoryMap::carve(usize i, u64 base, u64 length) {
  const MemoryRange r = ranges_[i];
  const bool has_below = base > r.base.value();
  const bool has_above = base + length < r.end();
  if (count_ + usize{has_below} + usize{has_above} > kMaxRanges) {
    return Status::TooBig;
  }
  ranges_[i] = MemoryRange{PhysAddr(base), length, MemoryKind::Kernel};
  if (has_above) {
    insert_at(i + 1, MemoryRange{PhysAddr(base + length), r.end() - base - length, r.kind});
  }
  if (has_below) {
    insert_at(i, MemoryRange{r.base, base - r.base.value(), r.kind});
  }
  merge_neighbours();
  return Status::Ok;
}

void MemoryMap::insert_at(usize i, const MemoryRange& range) {
  for (usize j = count_; j > i; --j) {
    ranges_[j] = ranges_[j - 1];
  }
  ranges_[i] = range;
  ++count_;
}

void MemoryMap::erase_at(usize i) {
  for (usize j = i; j + 1 < count_; ++j) {
    ranges_[j] = ranges_[j + 1];
  }
  --count_;
}

void MemoryMap::merge_neighbours() {
  for (usize i = 1; i < count_;) {
    MemoryRange& prev = ranges_[i - 1];
    if (prev.kind == ranges_[i].kind && prev.end() == ranges_[i].base.value()) {
      prev.length += ranges_[i].length;
      erase_at(i);
    } else {
      ++i;
    }
  }
}

Status MemoryMap::seed(FrameAllocator& allocator, const FrameTable& table) const {
  // Validate every clipped range before giving any, so a failure changes nothing.
  for (int pass = 0; pass < 2; ++pass) {
    for (usize i = 0; i < count_; ++i) {
      if (ranges_[i].kind != MemoryKind::Free) {
        continue;
      }
      Pfn first = Pfn::containing(ranges_[i].base);
      Pfn end = Pfn::containing(PhysAddr(ranges_[i].end()));
      first = first < table.base() ? table.base() : first;
      end = end > table.end() ? table.end() : end;
      if (first >= end) {
        continue;
      }
      if (pass == 0) {
        for (Pfn pfn = first; pfn < end; pfn = pfn + 1) {
          if (table[pfn].state != FrameState::Reserved) {
            return Status::BadAddress;
          }
        }
      } else {
        MM_TRY(allocator.add_free_range(first, end - first));
      }
    }
  }
  return Status::Ok;
}

}  // namespace mm
