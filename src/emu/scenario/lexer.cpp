#include "emu/scenario/lexer.hpp"

#include <cstdio>

#include "emu/io/text_input.hpp"

namespace pagelab::scenario {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
bool is_operator(char c) { return c == '=' || c == '<' || c == '>' || c == '!'; }
bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && !is_space(c)) || byte == 0x7f;
}

std::string quoted(std::string_view text) {
  std::string out = "'";
  out += text;
  out += '\'';
  return out;
}

// Lexes one line (without its '\n'). Returns false on a control character.
bool lex_line(std::string_view text, u32 number, Line& line, LexError& error) {
  line.number = number;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') break;
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (is_control(c)) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "unexpected control character 0x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      error = LexError{number, static_cast<u32>(i + 1), buffer};
      return false;
    }
    const std::size_t start = i;
    const bool op = is_operator(c);
    while (i < text.size() && text[i] != '#' && !is_space(text[i]) && !is_control(text[i]) && is_operator(text[i]) == op) {
      ++i;
    }
    line.tokens.push_back(Token{op ? TokenKind::Operator : TokenKind::Word, text.substr(start, i - start), static_cast<u32>(start + 1)});
  }
  return true;
}

int digit_value(char c, unsigned base) {
  if (c >= '0' && c <= '9') return c - '0';
  if (base == 16 && c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (base == 16 && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

LexResult lex_scenario(std::string_view text) {
  LexResult result;
  // An editor's UTF-8 byte-order mark is not part of the first statement.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  u32 number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t stop = text.find('\n', start);
    if (stop == std::string_view::npos) stop = text.size();
    ++number;
    const std::string_view raw = text.substr(start, stop - start);
    if (const std::optional<emu::LineProblem> problem = emu::check_text_line(raw, kMaxScenarioLineBytes)) {
      result.error = LexError{number, static_cast<u32>(problem->column), problem->message};
      return result;
    }
    Line line;
    LexError error;
    if (!lex_line(raw, number, line, error)) {
      result.error = std::move(error);
      return result;
    }
    if (!line.tokens.empty()) result.lines.push_back(std::move(line));
    if (stop == text.size()) break;
    start = stop + 1;
  }
  return result;
}

Lexed<u64> lex_number(std::string_view text) {
  Lexed<u64> out;
  std::string_view digits = text;
  unsigned base = 10;
  if (digits.size() >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  unsigned shift = 0;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      default: break;
    }
    if (shift != 0) digits.remove_suffix(1);
  }
  if (digits.empty()) {
    out.error = "bad number " + quoted(text);
    return out;
  }
  u64 value = 0;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    const int digit = digit_value(digits[i], base);
    if (digit < 0) {
      const char c = digits[i];
      const bool lowercase_suffix = i + 1 == digits.size() && shift == 0 && i > 0 && (c == 'k' || c == 'm' || c == 'g');
      out.error = "bad number " + quoted(text) + (lowercase_suffix ? " (size suffixes are K, M and G)" : "");
      return out;
    }
    if (value > (~u64{0} - static_cast<u64>(digit)) / base) {
      out.error = "number " + quoted(text) + " does not fit in 64 bits";
      return out;
    }
    value = value * base + static_cast<u64>(digit);
  }
  if (shift != 0 && value > (~u64{0} >> shift)) {
    out.error = "number " + quoted(text) + " does not fit in 64 bits";
    return out;
  }
  out.value = value << shift;
  return out;
}

Lexed<mm::Prot> lex_prot(std::string_view text) {
  Lexed<mm::Prot> out;
  if (text == "none") {
    out.value = mm::Prot::None;
    return out;
  }
  mm::Prot prot = mm::Prot::None;
  for (const char c : text) {
    const mm::Prot bit = c == 'r' ? mm::Prot::Read : c == 'w' ? mm::Prot::Write : c == 'x' ? mm::Prot::Exec : mm::Prot::None;
    if (bit == mm::Prot::None || (prot & bit) != mm::Prot::None) {
      out.error = "bad protection " + quoted(text) + " (expected a word of r, w, x letters, each at most once, or none)";
      return out;
    }
    prot = prot | bit;
  }
  if (text.empty()) {
    out.error = "bad protection ''";
    return out;
  }
  out.value = prot;
  return out;
}

bool is_name(std::string_view text) {
  if (text.empty()) return false;
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(text[0])) return false;
  for (const char c : text.substr(1)) {
    if (!letter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace pagelab::scenario
