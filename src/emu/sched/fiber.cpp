#include "emu/sched/fiber.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "mm/base/panic.hpp"

#if defined(PAGELAB_FIBER_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(PAGELAB_FIBER_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

// The switch. pagelab_fiber_switch(save, resume, transfer) pushes the
// callee-saved registers on the running stack, stores the stack pointer in
// *save, loads `resume` as the stack pointer, pops the other context's
// registers and returns into it with `transfer` in rax: the resumed side's
// call of pagelab_fiber_switch returns it (Fiber::switch_to passes the
// context it came from, which ASan wants to know).
//
// A new fiber's stack is laid out as if it had called the switch itself:
// six saved registers (r12 = the Fiber, r13 = the function to run, rbp = 0
// to end frame-pointer walks), then a return address into
// pagelab_fiber_start, which calls r13(r12, rax) on a 16-byte aligned stack.
// Its CFI marks the outermost frame, so unwinders stop there.
extern "C" void* pagelab_fiber_switch(void** save, void* resume, void* transfer);
extern "C" void pagelab_fiber_start();

asm(R"(
  .text
  .p2align 4
  .globl pagelab_fiber_switch
  .hidden pagelab_fiber_switch
  .type pagelab_fiber_switch, @function
pagelab_fiber_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  movq %rdx, %rax
  ret
  .cfi_endproc
  .size pagelab_fiber_switch, .-pagelab_fiber_switch

  .p2align 4
  .globl pagelab_fiber_start
  .hidden pagelab_fiber_start
  .type pagelab_fiber_start, @function
pagelab_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  movq %rax, %rsi
  call *%r13
  ud2
  .cfi_endproc
  .size pagelab_fiber_start, .-pagelab_fiber_start
)");

namespace pagelab::emu {

namespace {

std::size_t page_bytes() {
  static const std::size_t bytes = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return bytes;
}

// Stacks freed on this thread, kept for the next run: explore runs thousands
// of short runs per thread, and a fresh mapping costs two system calls and a
// page fault per page touched. Only stacks of the default size are kept.
struct StackCache {
  static constexpr std::size_t kMaxKept = 64;
  std::vector<std::byte*> kept;
  ~StackCache() {
    for (std::byte* mapping : kept) ::munmap(mapping, mapping_bytes());
  }
  static std::size_t mapping_bytes() { return page_bytes() + Fiber::kDefaultStackBytes; }
};
thread_local StackCache stack_cache;

std::byte* map_stack(std::size_t mapping_bytes) {
  if (mapping_bytes == StackCache::mapping_bytes() && !stack_cache.kept.empty()) {
    std::byte* mapping = stack_cache.kept.back();
    stack_cache.kept.pop_back();
    return mapping;
  }
  void* mapping = ::mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mapping == MAP_FAILED) MM_PANIC("fiber: no memory for a stack", mapping_bytes);
  if (::mprotect(mapping, page_bytes(), PROT_NONE) != 0) MM_PANIC("fiber: cannot protect the guard page", 0);
  return static_cast<std::byte*>(mapping);
}

void unmap_stack(std::byte* mapping, std::size_t mapping_bytes) {
#if defined(PAGELAB_FIBER_ASAN)
  // The fiber's outermost frames never returned: their redzones are still
  // poisoned in the shadow. The next fiber on these pages starts clean.
  ASAN_UNPOISON_MEMORY_REGION(mapping + page_bytes(), mapping_bytes - page_bytes());
#endif
  if (mapping_bytes == StackCache::mapping_bytes() && stack_cache.kept.size() < StackCache::kMaxKept) {
    stack_cache.kept.push_back(mapping);
    return;
  }
  ::munmap(mapping, mapping_bytes);
}

}  // namespace

Fiber::Fiber() {
#if defined(PAGELAB_FIBER_TSAN)
  tsan_fiber_ = __tsan_get_current_fiber();
#endif
}

Fiber::Fiber(Entry entry, void* argument, std::size_t stack_bytes) : entry_(entry), argument_(argument) {
  const std::size_t page = page_bytes();
  stack_bytes = (stack_bytes + page - 1) / page * page;
  mapping_bytes_ = page + stack_bytes;
  mapping_ = map_stack(mapping_bytes_);
  stack_bottom_ = mapping_ + page;
  stack_bytes_ = stack_bytes;

  // The stack as pagelab_fiber_switch leaves it (see above): after its `ret`
  // into pagelab_fiber_start, rsp is 16-byte aligned, as a call needs.
  auto* top = reinterpret_cast<std::uint64_t*>(mapping_ + mapping_bytes_);
  std::uint64_t* sp = top - 2;  // two zero words: alignment, and an end for stack walks
  sp[0] = sp[1] = 0;
  *--sp = reinterpret_cast<std::uint64_t>(&pagelab_fiber_start);
  *--sp = 0;                                                     // rbp
  *--sp = 0;                                                     // rbx
  *--sp = reinterpret_cast<std::uint64_t>(this);                 // r12
  *--sp = reinterpret_cast<std::uint64_t>(&Fiber::start);        // r13
  *--sp = 0;                                                     // r14
  *--sp = 0;                                                     // r15
  stack_pointer_ = sp;
#if defined(PAGELAB_FIBER_TSAN)
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

Fiber::~Fiber() {
  if (mapping_ == nullptr) return;  // a thread's own context: nothing of ours to free
#if defined(PAGELAB_FIBER_TSAN)
  __tsan_destroy_fiber(tsan_fiber_);
#endif
  unmap_stack(mapping_, mapping_bytes_);
}

void Fiber::switch_to(Fiber& from, Fiber& to) {
#if defined(PAGELAB_FIBER_ASAN)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, to.stack_bottom_, to.stack_bytes_);
#endif
#if defined(PAGELAB_FIBER_TSAN)
  __tsan_switch_to_fiber(to.tsan_fiber_, 0);  // 0: the switch orders everything before it before everything after
#endif
  [[maybe_unused]] auto* came_from = static_cast<Fiber*>(pagelab_fiber_switch(&from.stack_pointer_, to.stack_pointer_, &from));
#if defined(PAGELAB_FIBER_ASAN)
  // Also teaches a thread's own context where its stack is, the first time
  // it is switched away from.
  __sanitizer_finish_switch_fiber(fake_stack, &came_from->stack_bottom_, &came_from->stack_bytes_);
#endif
}

void Fiber::exit_to(Fiber& from, Fiber& to) {
#if defined(PAGELAB_FIBER_ASAN)
  __sanitizer_start_switch_fiber(nullptr, to.stack_bottom_, to.stack_bytes_);  // null: drop this fiber's fake stack
#endif
#if defined(PAGELAB_FIBER_TSAN)
  __tsan_switch_to_fiber(to.tsan_fiber_, 0);
#endif
  pagelab_fiber_switch(&from.stack_pointer_, to.stack_pointer_, &from);
  MM_PANIC("fiber: an ended fiber was resumed", 0);
}

void Fiber::start(Fiber* self, [[maybe_unused]] Fiber* from) noexcept {
#if defined(PAGELAB_FIBER_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &from->stack_bottom_, &from->stack_bytes_);
#endif
  self->entry_(self->argument_);
  MM_PANIC("fiber: the entry function returned (it must end with Fiber::exit_to)", 0);
}

}  // namespace pagelab::emu
