// Checked output (src/emu/io/output_file.hpp): no directory is created, a
// write that fails only at the flush (/dev/full) is still a failure, and
// the error names the path and the reason.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "emu/io/output_file.hpp"

namespace pagelab::emu {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "pagelab_output_file_" + std::to_string(::getpid()) + "_" + name;
}

TEST(OutputFile, WritesEveryByteAndClosesCleanly) {
  const std::string path = temp_path("ok");
  std::string error;
  auto out = OutputFile::open(path, error);
  ASSERT_TRUE(out) << error;
  out->write("one\n");
  out->write(std::string(100000, 'x'));
  EXPECT_TRUE(out->close());
  EXPECT_FALSE(out->failed());
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "one\n" + std::string(100000, 'x'));
  std::filesystem::remove(path);
}

TEST(OutputFile, AMissingDirectoryIsNeverCreated) {
  const std::string directory = temp_path("missing");
  std::string error;
  EXPECT_FALSE(OutputFile::open(directory + "/sub/file", error));
  EXPECT_EQ(error, directory + "/sub/file: No such file or directory");
  EXPECT_FALSE(std::filesystem::exists(directory));
  EXPECT_EQ(check_output_path(directory + "/sub/file"), directory + "/sub/file: No such file or directory");
  EXPECT_EQ(check_output_path(::testing::TempDir()), ::testing::TempDir() + ": Is a directory");
  EXPECT_EQ(check_output_path(temp_path("new")), std::nullopt);
  EXPECT_FALSE(std::filesystem::exists(temp_path("new")));  // checked, not created
}

TEST(OutputFile, AFullDiskShowsAtTheFlush) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  std::string error;
  auto out = OutputFile::open("/dev/full", error);
  ASSERT_TRUE(out) << error;
  out->write("a line the buffer takes\n");  // buffered: no error yet
  EXPECT_FALSE(out->close());
  EXPECT_TRUE(out->failed());
  EXPECT_EQ(out->error(), "/dev/full: No space left on device");
  // A large write fails before the close, and what follows is dropped.
  auto big = OutputFile::open("/dev/full", error);
  ASSERT_TRUE(big) << error;
  big->write(std::string(1 << 20, 'x'));
  EXPECT_TRUE(big->failed());
  big->write("dropped");
  EXPECT_FALSE(big->close());
  EXPECT_EQ(big->error(), "/dev/full: No space left on device");
}

}  // namespace
}  // namespace pagelab::emu
