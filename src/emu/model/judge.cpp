#include "emu/model/judge.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "emu/machine/machine.hpp"
#include "emu/model/vm_model.hpp"

namespace pagelab::model {

namespace {

using scenario::Statement;
using u64 = std::uint64_t;
using SpaceId = VmModel::SpaceId;
using Backing = VmModel::Backing;

constexpr u64 kPage = VmModel::kPage;

// A translation of one page as the model sees it: what backs it, and its rights.
struct View {
  Backing backing = Backing::None;  // None: nothing mapped (no translation)
  u64 store = 0;                    // Store: the store's id; Device: the physical page
  bool writable = false;
  bool executable = false;

  bool operator==(const View&) const = default;
  bool maps() const { return backing != Backing::None; }
  bool grants(mm::Access access) const {
    return maps() && (access == mm::Access::Read || (access == mm::Access::Write && writable) ||
                      (access == mm::Access::Execute && executable));
  }
};

View view_of(const VmModel::Page* p) {
  View v;
  if (p == nullptr || p->kind == VmModel::Kind::Guard || p->prot == mm::Prot::None || p->backing == Backing::None) return v;
  v.backing = p->backing;
  v.store = p->store;
  v.writable = VmModel::has(p->prot, mm::Prot::Write) && p->backing != Backing::Zero && !p->cow;
  v.executable = VmModel::has(p->prot, mm::Prot::Exec);
  return v;
}

std::string status_name(mm::Status s) { return mm::errno_name(s); }

class Judge {
 public:
  explicit Judge(emu::Machine& machine)
      : machine_(machine), zero_frame_(machine.vm().zero_frame().value()),
        dump_(std::getenv("PAGELAB_JUDGE_DUMP") != nullptr) {}

  JudgeResult run(const History& history) {
    for (const HistoryEvent& e : history.events()) {
      if (stopped_ || result_.failure) break;
      step(e);
    }
    if (!stopped_ && !result_.failure) quiescent();
    result_.complete = !stopped_;
    return std::move(result_);
  }

 private:
  // What a CPU is in the middle of.
  struct Pending {
    enum class Kind : std::uint8_t { None, Op, Fault } kind = Kind::None;
    const Statement* statement = nullptr;
    bool applied = false;
    mm::Status predicted = mm::Status::Ok;
    u64 va = 0;
    mm::Access access = mm::Access::Read;
    bool user = true;
    mm::FaultOutcome predicted_outcome = mm::FaultOutcome::Complete;
    bool device = false;  // the fault is on a device page
  };
  struct Stale {
    std::uint32_t owner;  // the CPU whose operation or fault left it stale
    View view;
  };
  struct CpuState {
    std::optional<SpaceId> space;
    std::string space_name;
    Pending pending;
  };

  void fail(std::uint32_t cpu, const Statement* statement, std::string message) {
    if (!result_.failure) result_.failure = JudgeFailure{"reference model: " + std::move(message), cpu, statement};
  }

  std::optional<SpaceId> id_of(const std::string& name) const {
    const auto it = ids_.find(name);
    return it == ids_.end() ? std::nullopt : std::optional<SpaceId>(it->second);
  }

  void step(const HistoryEvent& e) {
    CpuState& cpu = cpus_[e.cpu];
    if (dump_) {
      static const char* kKinds[] = {"stmt", "op", "fault", "effect", "op-end", "fault-end", "access", "unshared"};
      std::fprintf(stderr, "judge: cpu%u %-9s va=%#lx acc=%u val=%#lx pa=%#lx res=%u %s\n", e.cpu, kKinds[static_cast<int>(e.kind)],
                   e.va, e.access, e.value, e.physical, e.result,
                   e.statement ? std::string(scenario::keyword_of(*e.statement)).c_str() : "");
    }
    switch (e.kind) {
      case HistoryEvent::Kind::Statement:
        current_statement_[e.cpu] = e.statement;
        break;
      case HistoryEvent::Kind::OpBegin:
        cpu.pending = Pending{Pending::Kind::Op, e.statement};
        break;
      case HistoryEvent::Kind::FaultBegin:
        cpu.pending = Pending{Pending::Kind::Fault};
        cpu.pending.va = e.va;
        cpu.pending.access = static_cast<mm::Access>(e.access);
        cpu.pending.user = static_cast<mm::AccessMode>(e.mode) == mm::AccessMode::User;
        cpu.pending.statement = current_statement_[e.cpu];
        break;
      case HistoryEvent::Kind::Effect:
        take_effect(e.cpu);
        break;
      case HistoryEvent::Kind::OpEnd:
        take_effect(e.cpu);
        end_op(e.cpu, static_cast<mm::Status>(e.result));
        break;
      case HistoryEvent::Kind::FaultEnd:
        take_effect(e.cpu);
        end_fault(e.cpu, static_cast<mm::FaultOutcome>(e.result));
        break;
      case HistoryEvent::Kind::Access:
        judge_access(e);
        break;
      case HistoryEvent::Kind::Unshared:
        unshared(e);
        break;
    }
  }

  // ---- operations and faults ---------------------------------------------

  void take_effect(std::uint32_t c) {
    Pending& p = cpus_[c].pending;
    if (p.applied || p.kind == Pending::Kind::None) return;
    p.applied = true;
    if (p.kind == Pending::Kind::Fault) {
      apply_fault(c);
    } else {
      current_statement_[c] = p.statement;
      apply_op(c);
    }
  }

  // The pages of a space in [lo, hi), as views, each store watched (kept
  // alive) while the operation changes the model: afterwards the pages whose
  // view changed leave their old one stale until the operation returns
  // (leave_stale), and the rest are let go. An operation changes the views
  // of its own range only (a fork, of the whole parent), so that is all it
  // snapshots: the snapshot is most of the judge's time otherwise.
  using Views = std::vector<std::pair<u64, View>>;  // sorted by address
  Views views(SpaceId id, u64 lo = 0, u64 hi = ~u64{0}) {
    Views out;
    const VmModel::Pages& pages = model_.pages(id);
    for (auto it = pages.lower_bound(lo); it != pages.end() && it->first < hi; ++it) {
      const View v = view_of(&it->second);
      if (v.backing == Backing::Store) model_.watch(v.store);
      out.emplace_back(it->first, v);
    }
    return out;
  }
  void leave_stale(std::uint32_t c, SpaceId id, const Views& before) {
    for (const auto& [va, old] : before) {
      const bool stale = old.maps() && view_of(model_.page(id, va)) != old;
      if (stale) {
        stale_[{id, va}].push_back(Stale{c, old});
      } else if (old.backing == Backing::Store) {
        model_.unwatch(old.store);
      }
    }
  }
  void drop_stale(std::uint32_t c) {
    for (auto it = stale_.begin(); it != stale_.end();) {
      std::vector<Stale>& list = it->second;
      for (auto s = list.begin(); s != list.end();) {
        if (s->owner != c) {
          ++s;
          continue;
        }
        if (s->view.backing == Backing::Store) model_.unwatch(s->view.store);
        s = list.erase(s);
      }
      it = list.empty() ? stale_.erase(it) : std::next(it);
    }
  }

  void apply_op(std::uint32_t c) {
    Pending& p = cpus_[c].pending;
    const Statement& s = *p.statement;
    const auto space_of = [&](const std::string& name) { return id_of(name); };
    if (const auto* sp = s.as<scenario::SpaceStmt>()) {
      if (ids_.count(sp->name)) {
        p.predicted = mm::Status::AlreadyExists;
      } else {
        ids_[sp->name] = model_.create_space();
      }
      return;
    }
    if (const auto* u = s.as<scenario::UseStmt>()) {
      p.predicted = space_of(u->space) ? mm::Status::Ok : mm::Status::NotFound;
      return;
    }
    if (const auto* f = s.as<scenario::ForkStmt>()) {
      const std::optional<SpaceId> parent = space_of(f->parent);
      if (!parent) {
        p.predicted = mm::Status::NotFound;
        return;
      }
      const Views before = views(*parent);
      const SpaceId child = model_.create_space();
      ids_[f->child] = child;
      model_.fork(*parent, child);
      leave_stale(c, *parent, before);
      // A pinned page is copied for the child somewhere inside the fork,
      // while the parent's CPUs may still write it (its translation stays
      // writable): until the fork returns, each such write may or may not
      // be in the copy.
      for (const auto& [va, page] : model_.pages(*parent)) {
        const VmModel::Page* copy = model_.page(child, va);
        if (page.backing != Backing::Store || copy == nullptr || copy->backing != Backing::Store || copy->store == page.store) continue;
        copying_[c].emplace_back(page.store, copy->store);
        for (int slot = 0; slot < VmModel::kSlots; ++slot) {
          uncertain_[{copy->store, slot}].insert(model_.store_value(copy->store, slot));
        }
      }
      return;
    }
    std::string name;
    u64 lo = 0, length = 0;
    const auto range = [&](const auto* st) { name = st->space, lo = st->address.value(), length = st->length; };
    if (const auto* m = s.as<scenario::MapStmt>()) range(m);
    if (const auto* m = s.as<scenario::UnmapStmt>()) range(m);
    if (const auto* m = s.as<scenario::ProtectStmt>()) range(m);
    if (const auto* m = s.as<scenario::PinStmt>()) range(m);
    if (const auto* m = s.as<scenario::UnpinStmt>()) range(m);
    if (const auto* m = s.as<scenario::PokeStmt>()) name = m->space, lo = m->address.value() & ~(kPage - 1), length = kPage;
    const std::optional<SpaceId> id = space_of(name);
    if (!id) {
      p.predicted = mm::Status::NotFound;
      return;
    }
    const Views before = views(*id, lo, lo + length);
    if (const auto* m = s.as<scenario::MapStmt>()) {
      VmModel::MapArgs a;
      a.address = m->address.value();
      a.length = m->length;
      a.prot = m->prot;
      a.kind = m->kind == mm::RegionKind::Stack      ? VmModel::Kind::Stack
               : m->kind == mm::RegionKind::Physical ? VmModel::Kind::Device
                                                     : VmModel::Kind::Anonymous;
      a.sharing = m->fork == mm::ForkPolicy::Shared ? VmModel::Sharing::Shared : VmModel::Sharing::Private;
      a.populate = m->populate;
      a.physical = m->physical.value();
      p.predicted = model_.check_map(*id, a);
      if (p.predicted == mm::Status::Ok) model_.map(*id, a);
    } else if (const auto* u = s.as<scenario::UnmapStmt>()) {
      p.predicted = model_.check_unmap(*id, u->address.value(), u->length);
      if (p.predicted == mm::Status::Ok) model_.unmap(*id, u->address.value(), u->address.value() + u->length);
    } else if (const auto* pr = s.as<scenario::ProtectStmt>()) {
      p.predicted = model_.check_protect(*id, pr->address.value(), pr->length);
      if (p.predicted == mm::Status::Ok) model_.protect(*id, pr->address.value(), pr->length, pr->prot);
    } else if (const auto* pin = s.as<scenario::PinStmt>()) {
      p.predicted = model_.check_pin(*id, pin->address.value(), pin->length);
      if (p.predicted == mm::Status::Ok) model_.pin(*id, pin->address.value(), pin->length);
    } else if (const auto* unpin = s.as<scenario::UnpinStmt>()) {
      p.predicted = model_.check_unpin(*id, unpin->address.value(), unpin->length);
      if (p.predicted == mm::Status::Ok) model_.unpin(*id, unpin->address.value(), unpin->length);
    } else if (const auto* poke = s.as<scenario::PokeStmt>()) {
      const u64 va = poke->address.value();
      p.predicted = model_.check_kernel(*id, va, mm::Access::Write);
      if (p.predicted == mm::Status::Ok) {
        model_.fault(*id, va, mm::Access::Write);
        model_.write(*id, va, poke->value);
      }
    }
    leave_stale(c, *id, before);
  }

  void end_op(std::uint32_t c, mm::Status actual) {
    CpuState& cpu = cpus_[c];
    Pending p = cpu.pending;
    cpu.pending = Pending{};
    drop_stale(c);
    copying_[c].clear();
    if (p.statement == nullptr) return;
    if (actual == mm::Status::OutOfMemory) {
      stopped_ = true;  // the model does not predict the allocator
      return;
    }
    if (actual != p.predicted) {
      fail(c, p.statement, fmt::format("{} returned {}, the model says {}", scenario::keyword_of(*p.statement),
                                       status_name(actual), status_name(p.predicted)));
      return;
    }
    if (const auto* u = p.statement->as<scenario::UseStmt>(); u != nullptr && actual == mm::Status::Ok) {
      cpu.space = id_of(u->space);
      cpu.space_name = u->space;
    }
  }

  void apply_fault(std::uint32_t c) {
    CpuState& cpu = cpus_[c];
    Pending& p = cpu.pending;
    if (!cpu.space) {
      p.predicted_outcome = mm::FaultOutcome::Segv;
      return;
    }
    const SpaceId id = *cpu.space;
    const u64 page = p.va & ~(kPage - 1);
    const VmModel::Page* before_page = model_.page(id, page);
    p.device = before_page != nullptr && before_page->backing == Backing::Device;
    p.predicted_outcome = model_.predict_fault(id, p.va, p.access, p.user);
    if (!mm::resolved(p.predicted_outcome) || p.predicted_outcome == mm::FaultOutcome::Complete) return;
    const View old = view_of(before_page);
    if (old.backing == Backing::Store) model_.watch(old.store);
    const Views before = {{page, old}};
    model_.apply_fault(id, p.va, p.predicted_outcome);
    leave_stale(c, id, before);
  }

  // The core's word on a copy-on-write page that a pin, poke or fault of CPU
  // `c` unshared (history.hpp, Unshared): it copied, or took the frame in
  // place. Which one depends on the other sharers, whose unmaps, forks and
  // unsharings run under their own spaces' locks, so on an order of
  // refcounts the model's order of lock acquisitions does not decide. A copy
  // is always allowed; taking the frame in place only when no other page
  // holds the store any more: every other sharer's operation has taken
  // effect (its reference is dropped after that, never before). Where the
  // model chose otherwise at the linearization point, it follows the core
  // (the values are the same: a copy-on-write store is written by nobody),
  // and the page's store is bound to the frame the core now maps.
  void unshared(const HistoryEvent& e) {
    const std::uint32_t c = e.cpu;
    const CpuState& cpu = cpus_[c];
    Pending& p = cpus_[c].pending;
    const std::optional<SpaceId> id = p.kind == Pending::Kind::Fault ? cpu.space
                                      : p.kind == Pending::Kind::Op && p.statement != nullptr ? space_named(*p.statement)
                                                                                              : std::nullopt;
    const u64 va = e.va, from = e.value & ~(kPage - 1), to = e.physical & ~(kPage - 1);
    const VmModel::Page* page = id ? model_.page(*id, va) : nullptr;
    if (!p.applied || page == nullptr || page->backing != Backing::Store || page->cow) {
      fail(c, p.statement, fmt::format("cpu {} unshared page {:#x} (frame {:#x}), which no operation of the model's "
                                       "unshares at this point", c, va, from));
      return;
    }
    // The store the page had before this operation: the stale view it left, if its view changed.
    u64 before = page->store;
    if (const auto it = stale_.find({*id, va}); it != stale_.end()) {
      for (const Stale& s : it->second) {
        if (s.owner == c && s.view.backing == Backing::Store) before = s.view.store;
      }
    }
    if (const auto seen = frame_of_store_.find(before); seen != frame_of_store_.end() && seen->second != from) {
      fail(c, p.statement, fmt::format("cpu {} unshared page {:#x} from frame {:#x}; its data was seen in frame {:#x}", c, va,
                                       from, seen->second));
      return;
    }
    const bool copied = from != to;
    if (copied && before == page->store) {
      // The old translation stays usable until the operation returns (its shootdown).
      const Views was = views(*id, va, va + kPage);
      model_.split(*id, va);
      leave_stale(c, *id, was);
    } else if (!copied && before != page->store) {
      if (model_.store_alive(before)) {
        fail(c, p.statement, fmt::format("cpu {} took frame {:#x} in place for page {:#x}, while the model's other sharers "
                                         "of its store still hold it", c, from, va));
        return;
      }
      unbind(before);
    }
    const u64 store = page->store;  // the same node: split gives it its new store in place
    if (const auto holder = store_of_frame_.find(to);
        copied && holder != store_of_frame_.end() && holder->second != store && model_.store_alive(holder->second)) {
      fail(c, p.statement, fmt::format("cpu {} copied page {:#x} into frame {:#x}, where the model still has a live page's data",
                                       c, va, to));
      return;
    }
    unbind(store);
    if (const auto holder = store_of_frame_.find(to); holder != store_of_frame_.end()) unbind(holder->second);
    bind(View{Backing::Store, store}, to);
    if (p.kind == Pending::Kind::Fault) p.predicted_outcome = copied ? mm::FaultOutcome::CopyBacking : mm::FaultOutcome::MapBacking;
  }

  std::optional<SpaceId> space_named(const Statement& s) const {
    std::string name;
    if (const auto* m = s.as<scenario::MapStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::UnmapStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::ProtectStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::PinStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::UnpinStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::PokeStmt>()) name = m->space;
    if (const auto* m = s.as<scenario::ForkStmt>()) name = m->parent;
    return name.empty() ? std::nullopt : id_of(name);
  }

  void end_fault(std::uint32_t c, mm::FaultOutcome actual) {
    CpuState& cpu = cpus_[c];
    const Pending p = cpu.pending;
    cpu.pending = Pending{};
    drop_stale(c);
    if (actual == mm::FaultOutcome::OutOfMemory) {
      stopped_ = true;
      return;
    }
    const bool device_either = p.device && (actual == mm::FaultOutcome::Complete || actual == mm::FaultOutcome::MapBacking) &&
                               p.predicted_outcome == mm::FaultOutcome::MapBacking;
    if (actual != p.predicted_outcome && !device_either) {
      fail(c, p.statement, fmt::format("a {} fault at {:#x} in space {} was answered {}, the model says {}",
                                       mm::access_name(p.access), p.va, cpu.space_name, mm::fault_outcome_name(actual),
                                       mm::fault_outcome_name(p.predicted_outcome)));
    }
  }

  // ---- accesses -------------------------------------------------------------

  u64 value_of(const View& v, int slot) const {
    if (slot < 0) return 0;
    switch (v.backing) {
      case Backing::Store: return model_.store_value(v.store, slot);
      case Backing::Device: return model_.device_value(v.store, slot);
      default: return 0;
    }
  }
  // Could the access that used `frame` have gone through `v`?
  bool frame_fits(const View& v, u64 frame) const {
    switch (v.backing) {
      case Backing::Zero: return frame == zero_frame_;
      case Backing::Device: return frame == v.store;
      case Backing::Store: {
        const auto bound = frame_of_store_.find(v.store);
        if (bound != frame_of_store_.end()) return bound->second == frame;
        if (frame == zero_frame_) return false;  // a store is a frame of its own
        const auto holder = store_of_frame_.find(frame);
        // A frame whose store no page holds any more is free to be given
        // again, though a stale view still watches the store: the core drops
        // a removed translation's reference only after its shootdown.
        return holder == store_of_frame_.end() || !model_.store_alive(holder->second);
      }
      default: return false;
    }
  }
  void bind(const View& v, u64 frame) {
    if (v.backing != Backing::Store || frame_of_store_.count(v.store)) return;
    const auto old = store_of_frame_.find(frame);
    if (old != store_of_frame_.end()) frame_of_store_.erase(old->second);
    frame_of_store_[v.store] = frame;
    store_of_frame_[frame] = v.store;
  }

  void judge_access(const HistoryEvent& e) {
    const CpuState& cpu = cpus_[e.cpu];
    if (e.result != 0 || !cpu.space) return;  // a segv was judged as the fault that gave it
    const SpaceId id = *cpu.space;
    const u64 page = e.va & ~(kPage - 1);
    const mm::Access access = static_cast<mm::Access>(e.access);
    const u64 frame = e.physical & ~(kPage - 1);
    const int slot = VmModel::slot_of(e.va);
    // At most the current view and each CPU's stale one: no heap per access.
    boost::container::small_vector<View, 8> views;
    if (const View now = view_of(model_.page(id, page)); now.grants(access)) views.push_back(now);
    const std::size_t stale_from = views.size();
    if (const auto it = stale_.find({id, page}); it != stale_.end()) {
      for (const Stale& s : it->second) {
        if (s.view.grants(access)) views.push_back(s.view);
      }
    }
    const Statement* statement = current_statement_[e.cpu];
    const char* what = access == mm::Access::Read ? "read" : access == mm::Access::Write ? "write" : "exec";
    boost::container::small_vector<View, 8> fits;
    bool stale_fits = false;  // the access may have gone through a translation an operation removed
    for (std::size_t i = 0; i < views.size(); ++i) {
      const View& v = views[i];
      if (frame_fits(v, frame) && (access != mm::Access::Read || may_hold(v, slot, e.value))) {
        fits.push_back(v);
        stale_fits = stale_fits || i >= stale_from;
      }
    }
    if (fits.empty()) {
      std::string allowed;
      for (const View& v : views) {
        allowed += fmt::format("{}{:#x} in frame {}", allowed.empty() ? "" : ", ", value_of(v, slot), describe_frame(v));
      }
      if (allowed.empty()) allowed = "no translation that grants it";
      fail(e.cpu, statement,
           access == mm::Access::Read
               ? fmt::format("{} {:#x} in space {} on cpu {} returned {:#x} from frame {:#x}; the model allows {}", what, e.va,
                             cpu.space_name, e.cpu, e.value, frame, allowed)
               : fmt::format("{} {:#x} in space {} on cpu {} went through frame {:#x}; the model allows {}", what, e.va,
                             cpu.space_name, e.cpu, frame, allowed));
      return;
    }
    // A view whose frame is known for certain explains the access better
    // than a store not seen yet. A store is bound to the frame only when it
    // is the one view that fits (a stale and a current store, both unseen,
    // could each be the frame: wait for an access that tells them apart).
    const View* used = &fits.front();
    for (const View& v : fits) {
      if (v.backing != Backing::Store || frame_of_store_.count(v.store)) {
        used = &v;
        break;
      }
    }
    if (fits.size() == 1) bind(*used, frame);
    if (slot < 0 || used->backing == Backing::Zero) return;
    if (access == mm::Access::Read && used->backing == Backing::Store && !uncertain_.empty() &&
        uncertain_.count({used->store, slot})) {
      model_.write_store(used->store, slot, e.value);  // the copy held this one of its possible values
      uncertain_.erase({used->store, slot});
    }
    if (access != mm::Access::Write) return;
    if (used->backing == Backing::Device) model_.write_device(used->store, slot, e.value);
    if (used->backing != Backing::Store) return;
    model_.write_store(used->store, slot, e.value);
    if (!uncertain_.empty()) uncertain_.erase({used->store, slot});
    for (const auto& copies : copying_) {
      for (const auto& [from, to] : copies) {
        if (from == used->store) uncertain_[{to, slot}].insert(e.value);
      }
    }
  }

  // Forgets which frame `store` is on (both directions of the binding).
  void unbind(u64 store) {
    const auto bound = frame_of_store_.find(store);
    if (bound == frame_of_store_.end()) return;
    store_of_frame_.erase(bound->second);
    frame_of_store_.erase(bound);
  }

  // Can `v` hold `value` in `slot`: its value, or one of those a fork's
  // copy may have taken (copying_)?
  bool may_hold(const View& v, int slot, u64 value) const {
    if (value_of(v, slot) == value) return true;
    if (v.backing != Backing::Store || slot < 0) return false;
    const auto it = uncertain_.find({v.store, slot});
    return it != uncertain_.end() && it->second.count(value) != 0;
  }

  std::string describe_frame(const View& v) const {
    if (v.backing == Backing::Zero) return fmt::format("{:#x} (the zero frame)", zero_frame_);
    if (v.backing == Backing::Device) return fmt::format("{:#x} (device)", v.store);
    const auto bound = frame_of_store_.find(v.store);
    return bound == frame_of_store_.end() ? std::string("not yet seen") : fmt::format("{:#x}", bound->second);
  }

  // ---- quiescence -----------------------------------------------------------

  // What is wrong with the page tables' `leaf` (mapping `frame`) for the
  // model's page `m` at quiescence, or "". A page may be mapped later than
  // the model backs it (faults are lazy), never otherwise than the model
  // says: present exactly when its protection allows access (PROT_NONE
  // parks it), writable exactly when a write needs no fault (not a zero or
  // copy-on-write page), executable exactly under PROT_EXEC, a device page
  // on its own frame. (A large page changed past the range an operation
  // named shows here even where no access touched it.)
  std::string mapping_differs(const VmModel::Page& m, mm::Pte leaf, u64 frame) const {
    if (m.kind == VmModel::Kind::Guard) return "the guard page is mapped";
    if (m.backing == Backing::None) return fmt::format("frame {:#x} is mapped where the model has nothing yet", frame);
    const View v = view_of(&m);
    const bool accessible = m.prot != mm::Prot::None;
    if (leaf.present() != accessible || !leaf.user()) {
      return fmt::format("the leaf {:#x} is {}, the model's protection is {}", leaf.raw(),
                         leaf.present() ? "present" : "not present", mm::prot_name(m.prot));
    }
    if (accessible && (leaf.writable() != v.writable || leaf.no_execute() == v.executable)) {
      return fmt::format("the leaf {:#x} grants {}{}, the model {}{} ({})", leaf.raw(), leaf.writable() ? "write" : "no write",
                         leaf.no_execute() ? "" : ", execute", v.writable ? "write" : "no write", v.executable ? ", execute" : "",
                         mm::prot_name(m.prot));
    }
    if (m.backing == Backing::Device && frame != m.store) {
      return fmt::format("device page {:#x} is mapped to frame {:#x}", m.store, frame);
    }
    if (m.backing == Backing::Zero && frame != zero_frame_) {
      return fmt::format("a page the model has as the zero page maps frame {:#x}", frame);
    }
    return {};
  }

  // What is wrong with the frame a page with data maps at quiescence, or
  // "": two stores on one frame is data crossing owners; a store whose
  // frame an access (or the core's word on an unsharing) showed maps that
  // frame.
  struct FrameUser {  // the first page quiescent() found on a frame
    u64 store;
    const std::string* space;
    u64 va;
  };
  std::string frame_differs(const VmModel::Page& m, u64 va, u64 frame, const std::string& name,
                            std::map<u64, FrameUser>& users) const {
    if (m.backing != Backing::Store) return {};
    const auto [first, fresh] = users.try_emplace(frame, FrameUser{m.store, &name, va});
    if (!fresh && first->second.store != m.store) {
      return fmt::format("frame {:#x} also backs space {} page {:#x}, which the model gives other data", frame,
                         *first->second.space, first->second.va);
    }
    const auto bound = frame_of_store_.find(m.store);
    if (bound != frame_of_store_.end() && bound->second != frame) {
      return fmt::format("it maps frame {:#x}, its data was seen in frame {:#x}", frame, bound->second);
    }
    return {};
  }

  void quiescent() {
    std::map<u64, FrameUser> users;  // by frame
    for (const auto& entry : ids_) {
      const std::string& name = entry.first;  // a plain reference: Clang 14 lambdas cannot capture bindings
      const SpaceId id = entry.second;
      emu::EmuSpace* space = machine_.space(name);
      if (space == nullptr) continue;
      const VmModel::Pages& pages = model_.pages(id);
      // Regions, page by page.
      std::map<u64, const mm::Region*> core;
      std::string problem;
      space->for_each_region([&](const mm::Region& r) {
        for (u64 va = r.base.value(); va < r.end().value() && problem.empty(); va += kPage) {
          const auto it = pages.find(va);
          if (it == pages.end()) {
            problem = fmt::format("space {} maps {:#x} ({} {}), the model has nothing there", name, va,
                                  mm::region_kind_name(r.kind), mm::prot_name(r.prot));
            continue;
          }
          const VmModel::Page& m = it->second;
          const mm::RegionKind kind = m.kind == VmModel::Kind::Stack    ? mm::RegionKind::Stack
                                      : m.kind == VmModel::Kind::Guard  ? mm::RegionKind::Guard
                                      : m.kind == VmModel::Kind::Device ? mm::RegionKind::Physical
                                                                        : mm::RegionKind::Anonymous;
          const bool shared = m.sharing == VmModel::Sharing::Shared;
          if (kind != r.kind || (r.kind != mm::RegionKind::Guard && m.prot != r.prot) || m.pins != r.pins ||
              (r.kind != mm::RegionKind::Guard && r.kind != mm::RegionKind::Physical &&
               shared != (r.fork == mm::ForkPolicy::Shared))) {
            problem = fmt::format("space {} at {:#x}: the core has {} {}{} pins {}, the model {} {}{} pins {}", name, va,
                                  mm::region_kind_name(r.kind), mm::prot_name(r.prot),
                                  r.fork == mm::ForkPolicy::Shared ? " shared" : "", r.pins, mm::region_kind_name(kind),
                                  mm::prot_name(m.prot), shared ? " shared" : "", m.pins);
          }
        }
      });
      u64 covered = 0;
      space->for_each_region([&](const mm::Region& r) { covered += r.size / kPage; });
      if (problem.empty() && covered != pages.size()) {
        problem = fmt::format("space {}: the core maps {} pages, the model {}", name, covered, pages.size());
      }
      if (!problem.empty()) {
        fail(0, nullptr, "at the end: " + problem);
        return;
      }
      // Values, slot by slot.
      // (By the backing, whatever the protection: PROT_NONE keeps a page's frame.)
      for (const auto& [va, m] : pages) {
        const mm::Result<mm::Translation> t = space->translate(mm::VirtAddr(va));
        if (!t.ok()) {
          if (m.backing == Backing::Store) {
            fail(0, nullptr, fmt::format("at the end: space {} page {:#x} holds data in the model, the core maps nothing", name, va));
            return;
          }
          continue;
        }
        const u64 frame = t.value().physical.value() & ~(kPage - 1);
        std::string wrong = mapping_differs(m, t.value().leaf, frame);
        if (wrong.empty()) wrong = frame_differs(m, va, frame, name, users);
        if (!wrong.empty()) {
          fail(0, nullptr, fmt::format("at the end: space {} page {:#x}: {}", name, va, wrong));
          return;
        }
        for (int slot = 0; slot < VmModel::kSlots; ++slot) {
          const u64 at = t.value().physical.value() + VmModel::kSlotOffset[slot];
          const u64 actual = *reinterpret_cast<const u64*>(machine_.ram_at(at));
          const u64 expected = model_.value(id, va + VmModel::kSlotOffset[slot]);
          const auto maybe = m.backing == Backing::Store ? uncertain_.find({m.store, slot}) : uncertain_.end();
          if (actual != expected && (maybe == uncertain_.end() || maybe->second.count(actual) == 0)) {
            fail(0, nullptr, fmt::format("at the end: space {} reads {:#x} at {:#x} (frame {:#x}), the model {:#x}", name, actual,
                                         va + VmModel::kSlotOffset[slot], frame, expected));
            return;
          }
        }
      }
    }
  }

  emu::Machine& machine_;
  const u64 zero_frame_;
  const bool dump_;  // PAGELAB_JUDGE_DUMP: every event on stderr (docs/FUZZING.md)
  VmModel model_;
  std::map<std::string, SpaceId> ids_;
  CpuState cpus_[64];
  const Statement* current_statement_[64] = {};
  std::map<std::pair<SpaceId, u64>, std::vector<Stale>> stale_;
  // Forks under way, by CPU: (parent's store, child's copy) of each pinned
  // page; and the values a copy's slot may hold until a read says which.
  std::vector<std::pair<u64, u64>> copying_[64];
  std::map<std::pair<u64, int>, std::set<u64>> uncertain_;
  std::map<u64, u64> frame_of_store_;
  std::map<u64, u64> store_of_frame_;
  bool stopped_ = false;
  JudgeResult result_;
};

}  // namespace

JudgeResult judge_run(const scenario::Scenario& /*scenario*/, const History& history, emu::Machine& machine) {
  return Judge(machine).run(history);
}

}  // namespace pagelab::model
