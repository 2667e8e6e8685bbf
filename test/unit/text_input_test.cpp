// Bounded text input (src/emu/io/text_input.hpp, line_reader.hpp): the
// first NUL byte or over-long line, with its place; a whole file read no
// further than its bound; a stream cut into the lines getline would give.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "emu/io/line_reader.hpp"
#include "emu/io/text_input.hpp"

namespace pagelab::emu {
namespace {

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "pagelab_text_input_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(CheckTextLine, NulByteOrLengthWhicheverComesFirst) {
  EXPECT_FALSE(check_text_line("", 4));
  EXPECT_FALSE(check_text_line("abcd", 4));
  const auto nul = check_text_line(std::string("ab\0d", 4), 4);
  ASSERT_TRUE(nul);
  EXPECT_EQ(nul->column, 3u);
  EXPECT_EQ(nul->message, "binary data (a NUL byte), not text");
  const auto long_line = check_text_line("abcde", 4);
  ASSERT_TRUE(long_line);
  EXPECT_EQ(long_line->column, 5u);
  EXPECT_EQ(long_line->message, "line longer than 4 bytes");
  // A NUL past the limit: the line was too long first.
  EXPECT_EQ(check_text_line(std::string("abcd\0", 5), 4)->column, 5u);
  EXPECT_EQ(check_text_line(std::string("abcd\0", 5), 4)->message, "line longer than 4 bytes");
}

TEST(ReadTextFile, ExactBytesWithinTheBounds) {
  const std::string bytes = "line one\r\nline two\nno newline at the end";
  const std::string path = temp_file("ok", bytes);
  const TextFile file = read_text_file(path, {32, 64, "a test"});
  ASSERT_TRUE(file.ok()) << file.error->text;
  EXPECT_EQ(file.text, bytes);
  std::remove(path.c_str());
}

TEST(ReadTextFile, EveryKindOfError) {
  const std::string big = temp_file("big", std::string(65, '\n'));
  const TextFile too_big = read_text_file(big, {16, 64, "a test"});
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error->kind, InputError::Kind::Content);
  EXPECT_EQ(too_big.error->text, big + ": error: larger than 64 bytes (a test is at most 64 bytes)");
  const std::string at_limit = temp_file("limit", std::string(64, '\n'));
  EXPECT_TRUE(read_text_file(at_limit, {16, 64, "a test"}).ok());

  const std::string long_line = temp_file("long", "ok\n" + std::string(17, 'x'));
  EXPECT_EQ(read_text_file(long_line, {16, 64, "a test"}).error->text, long_line + ":2:17: error: line longer than 16 bytes");

  // /dev/zero: the first byte is the error, after one bounded read.
  const TextFile zero = read_text_file("/dev/zero", {4096, std::size_t{4} << 20, "a test"});
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error->text, "/dev/zero:1:1: error: binary data (a NUL byte), not text");

  const TextFile missing = read_text_file("/nonexistent/pagelab", {16, 64, "a test"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error->kind, InputError::Kind::Unreadable);
  EXPECT_EQ(missing.error->message("pagelab"), "pagelab: cannot read /nonexistent/pagelab: No such file or directory");
  EXPECT_EQ(read_text_file("/", {16, 64, "a test"}).error->message("pagelab"), "pagelab: cannot read /: Is a directory");
  for (const std::string& path : {big, at_limit, long_line}) std::remove(path.c_str());
}

std::vector<std::string> lines_of(const std::string& text, const TextLimits& limits, std::string* error = nullptr) {
  std::istringstream in(text);
  LineReader reader(in, "t", limits);
  std::vector<std::string> lines;
  std::string_view line;
  while (reader.next(line)) lines.emplace_back(line);
  if (error != nullptr) *error = reader.error() ? reader.error()->text : "";
  return lines;
}

TEST(LineReader, TheLinesGetlineGives) {
  const std::string text = "a\n\nbb\r\n" + std::string(100000, 'c') + "\nlast";
  std::vector<std::string> expected;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) expected.push_back(line);
  std::string error;
  EXPECT_EQ(lines_of(text, {200000, 0, "t"}, &error), expected);
  EXPECT_EQ(error, "");
  EXPECT_TRUE(lines_of("", {16, 0, "t"}).empty());
}

TEST(LineReader, StopsAtTheFirstProblem) {
  std::string error;
  EXPECT_EQ(lines_of("ok\n" + std::string(40, 'x') + "\nnever\n", {16, 0, "t"}, &error), std::vector<std::string>{"ok"});
  EXPECT_EQ(error, "t:2:17: error: line longer than 16 bytes");
  EXPECT_EQ(lines_of(std::string("ok\nx\0y\n", 7), {16, 0, "t"}, &error), std::vector<std::string>{"ok"});
  EXPECT_EQ(error, "t:2:2: error: binary data (a NUL byte), not text");
  // The whole input bounded: 8 lines of 10 bytes are more than 64.
  std::string text;
  for (int i = 0; i < 8; ++i) text += "123456789\n";
  lines_of(text, {16, 64, "a test"}, &error);
  EXPECT_EQ(error, "t: error: larger than 64 bytes (a test is at most 64 bytes)");
}

}  // namespace
}  // namespace pagelab::emu
