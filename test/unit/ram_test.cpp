#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "emu/ram/ram.hpp"

namespace {

using pagelab::emu::Ram;
using pagelab::emu::RamSpec;

TEST(Ram, SpecsParseAndBadOnesSayWhy) {
  std::string error;
  EXPECT_EQ(RamSpec::parse("anon", error)->kind, RamSpec::Kind::Anonymous);
  EXPECT_EQ(RamSpec::parse("shm:lab", error)->name, "lab");
  EXPECT_EQ(RamSpec::parse("file:/tmp/x.ram", error)->kind, RamSpec::Kind::File);
  EXPECT_FALSE(RamSpec::parse("disk:/x", error));
  EXPECT_NE(error.find("'anon', 'shm:NAME' or 'file:PATH'"), std::string::npos);
  EXPECT_FALSE(RamSpec::parse("shm:a/b", error));
}

TEST(Ram, AnonymousRamIsZeroedAndSized) {
  std::string error;
  auto ram = Ram::create(RamSpec{}, 1 << 20, error);
  ASSERT_TRUE(ram) << error;
  EXPECT_EQ(ram->bytes(), 1u << 20);
  for (std::size_t i = 0; i < ram->bytes(); i += 4096) ASSERT_EQ(ram->frames()[i], std::byte{0});
  EXPECT_FALSE(Ram::create(RamSpec{}, 1000, error));
  EXPECT_FALSE(Ram::open_read_only(RamSpec{}, error));
}

TEST(Ram, AFileRamCanBeReopenedReadOnlyWithItsHeader) {
  const std::string path = ::testing::TempDir() + "pagelab_ram_test.ram";
  std::string error;
  {
    auto ram = Ram::create(RamSpec{RamSpec::Kind::File, path}, 64 * 4096, error);
    ASSERT_TRUE(ram) << error;
    ram->record_space("A", 0x5000);
    ram->record_space("B", 0x9000);
    ram->record_space("A", 0x6000);
    std::memcpy(ram->frames() + 4096, "hello", 5);
  }
  auto again = Ram::open_read_only(RamSpec{RamSpec::Kind::File, path}, error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(again->bytes(), 64u * 4096);
  EXPECT_EQ(again->header().space_count, 2u);
  EXPECT_EQ(again->header().spaces[0].cr3, 0x6000u);
  EXPECT_STREQ(again->header().spaces[1].name, "B");
  EXPECT_EQ(std::memcmp(again->frames() + 4096, "hello", 5), 0);
  std::filesystem::remove(path);
  EXPECT_FALSE(Ram::open_read_only(RamSpec{RamSpec::Kind::File, path}, error));
  EXPECT_NE(error.find("cannot open RAM"), std::string::npos);
}

TEST(Ram, ASharedMemoryRamIsVisibleToASecondMapping) {
  std::string error;
  const RamSpec spec{RamSpec::Kind::SharedMemory, "pagelab_ram_test"};
  auto ram = Ram::create(spec, 16 * 4096, error);
  ASSERT_TRUE(ram) << error;
  ram->frames()[123] = std::byte{42};
  auto reader = Ram::open_read_only(spec, error);
  ASSERT_TRUE(reader) << error;
  EXPECT_EQ(reader->frames()[123], std::byte{42});
}

}  // namespace
