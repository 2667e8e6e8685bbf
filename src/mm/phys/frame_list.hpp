// An intrusive doubly linked list of frames, threaded through the next/prev
// indices of their Frame records. No storage of its own beyond a head; O(1)
// push, pop and removal from the middle (the buddy allocator removes a
// frame's buddy when it merges). Not synchronized.
#pragma once

#include "mm/phys/frame_table.hpp"

namespace mm {

class FrameList {
 public:
  bool empty() const { return head_ == kNoFrameLink; }
  FrameCount size() const { return size_; }

  void push_front(FrameTable& table, Pfn pfn) {
    const u32 index = table.index_of(pfn);
    Frame& frame = table.at_index(index);
    frame.prev = kNoFrameLink;
    frame.next = head_;
    if (head_ != kNoFrameLink) {
      table.at_index(head_).prev = index;
    }
    head_ = index;
    ++size_;
  }

  // Precondition: !empty().
  Pfn pop_front(FrameTable& table) {
    const u32 index = head_;
    remove_index(table, index);
    return table.pfn_at(index);
  }

  // Precondition: pfn is on this list.
  void remove(FrameTable& table, Pfn pfn) { remove_index(table, table.index_of(pfn)); }

  // Calls f(pfn) for each frame from the front; f returns false to stop.
  template <typename F>
  void for_each(FrameTable& table, F&& f) const {
    for (u32 i = head_; i != kNoFrameLink; i = table.at_index(i).next) {
      if (!f(table.pfn_at(i))) {
        return;
      }
    }
  }

 private:
  void remove_index(FrameTable& table, u32 index) {
    Frame& frame = table.at_index(index);
    if (frame.prev != kNoFrameLink) {
      table.at_index(frame.prev).next = frame.next;
    } else {
      head_ = frame.next;
    }
    if (frame.next != kNoFrameLink) {
      table.at_index(frame.next).prev = frame.prev;
    }
    frame.next = kNoFrameLink;
    frame.prev = kNoFrameLink;
    --size_;
  }

  u32 head_ = kNoFrameLink;
  FrameCount size_ = 0;
};

}  // namespace mm
