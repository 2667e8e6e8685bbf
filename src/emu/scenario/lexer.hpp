// The lexical layer of scenario files (docs/SCENARIOS.md, "Lexical rules"):
// lines of tokens, and the forms a single token can take — numbers with
// their size suffixes, protections, names.
//
// A line is split into tokens at whitespace. A token is either a word (a run
// of anything but whitespace, `#` and the operator characters `= < > !`) or
// an operator (a run of operator characters), so `cpus=4` is three tokens
// and `leaked==0` is too. `#` starts a comment that runs to the end of the
// line. Blank and comment-only lines produce no Line at all. A UTF-8
// byte-order mark at the very start is skipped.
//
// A line holds at most kMaxScenarioLineBytes bytes and no NUL byte, comment
// or not (emu/io/text_input.hpp); a file read from disk holds at most
// kMaxScenarioBytes (the command line's reader stops there). Far above any
// scenario written or generated, they keep /dev/zero or a binary named by
// mistake from being read for ever.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emu/scenario/ast.hpp"

namespace pagelab::scenario {

inline constexpr std::size_t kMaxScenarioLineBytes = 4096;
inline constexpr std::size_t kMaxScenarioBytes = std::size_t{4} << 20;

enum class TokenKind : std::uint8_t { Word, Operator };

struct Token {
  TokenKind kind = TokenKind::Word;
  std::string_view text;  // points into the scenario text
  u32 column = 0;         // 1-based, of the first character
  u32 end_column() const { return column + static_cast<u32>(text.size()); }  // one past the last character
};

struct Line {
  u32 number = 0;  // 1-based
  std::vector<Token> tokens;  // never empty
  // One past the last token: where a missing argument is reported.
  u32 end_column() const { return tokens.back().end_column(); }
};

struct LexError {
  u32 line = 0;
  u32 column = 0;
  std::string message;
};

// Splits `text` into its non-blank lines. Fails on a line longer than
// kMaxScenarioLineBytes, a NUL byte anywhere ("binary data"), and a control
// character (anything below 0x20 but tab, carriage return, vertical tab and
// form feed, and DEL) outside a comment.
struct LexResult {
  std::vector<Line> lines;
  std::optional<LexError> error;  // the first error, if any (then `lines` is incomplete)
};
LexResult lex_scenario(std::string_view text);

// A token's value, or the message that says why it has none.
template <typename T>
struct Lexed {
  T value{};
  std::string error;  // empty when value is meaningful
  bool ok() const { return error.empty(); }
};

// Decimal or 0x hex, with an optional size suffix K, M or G (powers of 1024).
// "bad number 'X'" / "number 'X' does not fit in 64 bits".
Lexed<u64> lex_number(std::string_view text);

// A word of r, w, x letters (each at most once, any order) or `none`.
Lexed<mm::Prot> lex_prot(std::string_view text);

// Space and barrier names: a letter or '_', then letters, digits, '_', '-' or '.'.
bool is_name(std::string_view text);

}  // namespace pagelab::scenario
