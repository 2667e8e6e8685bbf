// ChoiceStream: where the workload generator gets every decision it makes.
//
// The generator never holds a random generator of its own: each decision is
// one draw(bound) from this stream. Recording, the stream draws from a
// seeded generator and keeps every value; replaying, it hands back a given
// sequence (values above a bound are folded into range, and past the end
// every draw is 0: the simplest choice). A case is therefore a function of
// its choice sequence, and shrinking can work on that sequence the way
// Hypothesis does: delete a run of choices, lower one, and generate again -
// the generator turns any sequence into a valid case.
#pragma once

#include <cstdint>
#include <vector>

namespace pagelab::fuzz {

class ChoiceStream {
 public:
  // Records fresh choices drawn from `seed`.
  static ChoiceStream recording(std::uint64_t seed) {
    ChoiceStream s;
    s.state_ = seed ^ 0x9E3779B97F4A7C15ull;
    s.recording_ = true;
    return s;
  }
  // Replays `choices`.
  static ChoiceStream replaying(std::vector<std::uint64_t> choices) {
    ChoiceStream s;
    s.choices_ = std::move(choices);
    return s;
  }

  // A value in [0, bound) (0 when bound is 0 or 1).
  std::uint64_t draw(std::uint64_t bound) {
    if (bound <= 1) return 0;
    std::uint64_t value = 0;
    if (recording_) {
      value = next() % bound;
      choices_.push_back(value);
    } else if (at_ < choices_.size()) {
      value = choices_[at_] % bound;
      choices_[at_] = value;  // what the generator saw: shrinking starts from it
    }
    ++at_;
    return value;
  }
  // A value in [lo, hi].
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + draw(hi - lo + 1); }
  // True with probability percent/100 (0 is "no": the simplest choice).
  bool percent(std::uint64_t percent) { return draw(100) >= 100 - percent; }
  template <typename T, std::size_t N>
  const T& pick(const T (&options)[N]) {
    return options[draw(N)];
  }

  // The choices made so far (a replay: the sequence as used, trimmed to what was drawn).
  std::vector<std::uint64_t> used() const {
    std::vector<std::uint64_t> out(choices_.begin(), choices_.begin() + static_cast<std::ptrdiff_t>(
                                                                           at_ < choices_.size() ? at_ : choices_.size()));
    out.resize(at_, 0);
    return out;
  }

 private:
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  std::vector<std::uint64_t> choices_;
  std::size_t at_ = 0;
  std::uint64_t state_ = 0;
  bool recording_ = false;
};

}  // namespace pagelab::fuzz
