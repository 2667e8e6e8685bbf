#include "mm/phys/frame_table.hpp"

#include <new>

namespace mm {

FrameTable::FrameTable(Pfn base, Span<Frame> storage)
    : base_(base), size_(storage.size()), frames_(storage.data()) {
  MM_ASSERT(size_ < kNoFrameLink);
  for (Frame& frame : storage) {
    new (&frame) Frame{};
  }
}

const char* frame_state_name(FrameState state) {
  switch (state) {
    case FrameState::Reserved: return "reserved";
    case FrameState::Free: return "free";
    case FrameState::Allocated: return "allocated";
    case FrameState::Interior: return "interior";
  }
  return "?";
}

const char* frame_owner_name(FrameOwner owner) {
  switch (owner) {
    case FrameOwner::Free: return "free";
    case FrameOwner::Anonymous: return "anonymous";
    case FrameOwner::CowShared: return "cow-shared";
    case FrameOwner::Shared: return "shared";
    case FrameOwner::PageTable: return "page-table";
    case FrameOwner::Kernel: return "kernel";
    case FrameOwner::Reserved: return "reserved";
  }
  return "?";
}

}  // namespace mm
