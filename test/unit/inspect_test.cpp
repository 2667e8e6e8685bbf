// `pagelab inspect`'s formatting, on a RAM file whose page tables the real
// mapper (mm::PageTables over a HostPlatform on Ram::frames()) wrote.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "emu/cli/inspect.hpp"
#include "emu/host_platform.hpp"
#include "emu/ram/ram.hpp"
#include "mm/paging/page_tables.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/frame_table.hpp"
#include "mm/phys/physical_memory.hpp"

namespace {

using mm::PageSize;
using mm::PhysAddr;
using mm::Status;
using mm::VirtAddr;
using pagelab::HostPlatform;
using pagelab::emu::Ram;
using pagelab::emu::RamSpec;

constexpr mm::u64 kRamBytes = 4 << 20;
constexpr mm::FrameCount kFrames = kRamBytes / 4096;
constexpr mm::u64 kUserRw = mm::pte::kWritable | mm::pte::kUser;

bool contains(const std::string& text, const std::string& piece) { return text.find(piece) != std::string::npos; }

// Lines of `text` that contain every piece.
int lines_with(const std::string& text, const std::vector<std::string>& pieces) {
  int count = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    bool all = true;
    for (const std::string& p : pieces) all = all && contains(line, p);
    count += all ? 1 : 0;
    start = end + 1;
  }
  return count;
}

struct InspectTest : ::testing::Test {
  std::string path = "/tmp/pagelab-inspect-test-" + std::to_string(::getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".ram";
  std::unique_ptr<Ram> ram;
  std::vector<mm::Frame> storage = std::vector<mm::Frame>(kFrames);
  std::unique_ptr<HostPlatform> platform;
  std::unique_ptr<mm::FrameTable> table;
  std::unique_ptr<mm::BuddyAllocator> buddy;
  std::unique_ptr<mm::PhysicalMemory<HostPlatform>> pmm;
  std::unique_ptr<mm::PageTables<HostPlatform>> tables;
  mm::u64 root = 0;

  void SetUp() override {
    HostPlatform::bind_current_thread(0);
    std::string error;
    ram = Ram::create(RamSpec{RamSpec::Kind::File, path}, kRamBytes, error);
    ASSERT_NE(ram, nullptr) << error;
    platform = std::make_unique<HostPlatform>(std::span<std::byte>(ram->frames(), ram->bytes()), PhysAddr(0), 1);
    table = std::make_unique<mm::FrameTable>(mm::Pfn(0), storage);
    buddy = std::make_unique<mm::BuddyAllocator>(*table);
    // Page tables come from the first MiB (frame 0 left out: 0 is no table).
    ASSERT_EQ(buddy->add_free_range(mm::Pfn(16), 240), Status::Ok);
    pmm = std::make_unique<mm::PhysicalMemory<HostPlatform>>(*platform, *table, *buddy, mm::PhysicalMemoryConfig{});
    tables = std::make_unique<mm::PageTables<HostPlatform>>(*platform, *pmm);
    ASSERT_EQ(tables->create(), Status::Ok);
    root = tables->root().value();

    // Three 4 KiB pages on consecutive frames, one read-only CoW no-execute
    // page, one parked page, and a 2 MiB page.
    ASSERT_EQ(tables->map(VirtAddr(0x10000000), PhysAddr(0x300000), 3, PageSize::Size4K, kUserRw), Status::Ok);
    ASSERT_EQ(tables->map(VirtAddr(0x10005000), PhysAddr(0x310000), 1, PageSize::Size4K,
                          mm::pte::kUser | mm::pte::kCopyOnWrite | mm::pte::kNoExecute),
              Status::Ok);
    ASSERT_EQ(tables->map(VirtAddr(0x10006000), PhysAddr(0x311000), 1, PageSize::Size4K, kUserRw | mm::pte::kParked),
              Status::Ok);
    ASSERT_EQ(tables->map(VirtAddr(0x10200000), PhysAddr(0x200000), 1, PageSize::Size2M, kUserRw), Status::Ok);
    ram->record_space("A", root);
  }
  void TearDown() override {
    tables.reset();
    pmm.reset();
    ram.reset();
    std::remove(path.c_str());
  }
};

TEST_F(InspectTest, TreeListsEveryTableAndLeaf) {
  const std::string tree = pagelab::emu::inspect_tree(*ram, root, "A");
  SCOPED_TRACE(tree);
  EXPECT_TRUE(contains(tree, "space A (cr3 "));
  EXPECT_EQ(lines_with(tree, {"PML4 @"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  0] 0x000000000000-0x007fffffffff PDPT @", "(P RW US)"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  0] 0x000000000000-0x00003fffffff PD @"}), 1);
  EXPECT_EQ(lines_with(tree, {"[128] 0x000010000000-0x0000101fffff PT @"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  0] 0x000010000000-0x000010000fff 4K page -> 0x300000", "(P RW US)"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  2] 0x000010002000-0x000010002fff 4K page -> 0x302000"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  5] 0x000010005000-0x000010005fff 4K page -> 0x310000", "(P US NX COW)"}), 1);
  EXPECT_EQ(lines_with(tree, {"[  6] 0x000010006000-0x000010006fff 4K page -> 0x311000 (parked)", "PARKED"}), 1);
  EXPECT_EQ(lines_with(tree, {"[129] 0x000010200000-0x0000103fffff 2M page -> 0x200000", "(P RW US PS)"}), 1);
  EXPECT_EQ(lines_with(tree, {"4 tables, 5 leaves (4 x 4K, 1 x 2M, 0 x 1G), 1 parked"}), 1);
  EXPECT_EQ(lines_with(tree, {"page ->"}), 6);
}

TEST_F(InspectTest, AddressShowsEachLevel) {
  const std::string out = pagelab::emu::inspect_address(*ram, root, 0x10001234);
  SCOPED_TRACE(out);
  EXPECT_EQ(lines_with(out, {"PML4E [  0] @", "P RW US"}), 1);
  EXPECT_EQ(lines_with(out, {"PDPTE [  0] @"}), 1);
  EXPECT_EQ(lines_with(out, {"PDE   [128] @"}), 1);
  EXPECT_EQ(lines_with(out, {"PTE   [  1] @", "= 0x0000000000301007", "P RW US"}), 1);
  EXPECT_TRUE(contains(out, "=> physical 0x301234 (4K page at 0x301000; writable, user, executable)"));
  // The entry addresses are the tables' own: the PML4E lies in the root.
  EXPECT_TRUE(contains(out, fmt::format("@{:#014x}", root)));
}

TEST_F(InspectTest, AddressInLargePageAndRights) {
  const std::string big = pagelab::emu::inspect_address(*ram, root, 0x10212345);
  EXPECT_TRUE(contains(big, "=> physical 0x212345 (2M page at 0x200000; writable, user, executable)")) << big;
  EXPECT_EQ(lines_with(big, {"  PTE "}), 0) << big;
  const std::string cow = pagelab::emu::inspect_address(*ram, root, 0x10005008);
  EXPECT_TRUE(contains(cow, "=> physical 0x310008 (4K page at 0x310000; read-only, user, no-execute)")) << cow;
}

TEST_F(InspectTest, AddressWhereTheWalkStops) {
  const std::string absent = pagelab::emu::inspect_address(*ram, root, 0x20000000);
  EXPECT_TRUE(contains(absent, "stopped at PDE: not present")) << absent;
  const std::string high = pagelab::emu::inspect_address(*ram, root, 0x7f0000000000);
  EXPECT_TRUE(contains(high, "stopped at PML4E: not present")) << high;
  const std::string parked = pagelab::emu::inspect_address(*ram, root, 0x10006000);
  EXPECT_TRUE(contains(parked, "stopped at PTE: not present (parked: PROT_NONE page keeping frame 0x311000)")) << parked;
  const std::string odd = pagelab::emu::inspect_address(*ram, root, 0x800000000000);
  EXPECT_TRUE(contains(odd, "not canonical")) << odd;
}

TEST_F(InspectTest, ReadsWithoutWriting) {
  // hw::walk would set A: inspect must not (the RAM is open read-only anyway).
  const std::string before = pagelab::emu::inspect_tree(*ram, root, "A");
  (void)pagelab::emu::inspect_address(*ram, root, 0x10001234);
  EXPECT_EQ(pagelab::emu::inspect_tree(*ram, root, "A"), before);
  EXPECT_EQ(lines_with(before, {"US A"}), 0) << before;
}

TEST_F(InspectTest, DotDrawsTablesAndLeafRuns) {
  const std::string dot = pagelab::emu::inspect_dot(*ram, root, "A");
  SCOPED_TRACE(dot);
  EXPECT_EQ(dot.rfind("digraph pagelab {", 0), 0u);
  EXPECT_EQ(dot.back(), '\n');
  EXPECT_EQ(lines_with(dot, {"shape=box"}), 4);  // PML4, PDPT, PD, PT
  EXPECT_EQ(lines_with(dot, {"3 x 4K", "0x000010000000-0x000010002fff", "-> 0x300000", "shape=ellipse"}), 1);
  EXPECT_EQ(lines_with(dot, {"[label=\"0-2\"]"}), 1);
  EXPECT_EQ(lines_with(dot, {"[label=\"128\"]"}), 1);
  EXPECT_EQ(lines_with(dot, {"[label=\"129\"]"}), 1);
  EXPECT_EQ(lines_with(dot, {"4K parked"}), 1);
  EXPECT_EQ(lines_with(dot, {"shape=ellipse"}), 4);  // the run of 3, CoW, parked, 2M
}

TEST_F(InspectTest, ReopenedReadOnlyAndDestroyedSpaces) {
  // A space whose root lies zeroed (what a destroyed space leaves when its
  // frame is not poisoned).
  ram->record_space("B", 0x80000);
  std::string error;
  const auto again = Ram::open_read_only(RamSpec{RamSpec::Kind::File, path}, error);
  ASSERT_NE(again, nullptr) << error;
  EXPECT_EQ(again->header().space_count, 2u);
  EXPECT_EQ(pagelab::emu::inspect_tree(*again, root, "A"), pagelab::emu::inspect_tree(*ram, root, "A"));
  const std::string b = pagelab::emu::inspect_tree(*again, 0x80000, "B");
  EXPECT_TRUE(contains(b, "space B: no mappings (the run destroyed it)")) << b;
  const std::string outside = pagelab::emu::inspect_tree(*again, 0x40000000, "C");
  EXPECT_TRUE(contains(outside, "lies outside the RAM")) << outside;

  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "", "", "text"), 0);
  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "A", "0x10000000", "text"), 0);
  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "", "", "dot"), 0);
  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "nope", "", "text"), 2);
  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "", "zz", "text"), 2);
  EXPECT_EQ(pagelab::emu::inspect_command("file:" + path, "", "", "svg"), 2);
  EXPECT_EQ(pagelab::emu::inspect_command("file:/nonexistent/pagelab.ram", "", "", "text"), 2);
  EXPECT_EQ(pagelab::emu::inspect_command("anon", "", "", "text"), 2);
  EXPECT_EQ(pagelab::emu::inspect_command("disk:x", "", "", "text"), 2);
}

TEST(InspectFlags, NamesTheBits) {
  using pagelab::emu::describe_entry_flags;
  EXPECT_EQ(describe_entry_flags(0, 1), "-");
  EXPECT_EQ(describe_entry_flags(0x67, 1), "P RW US A D");
  EXPECT_EQ(describe_entry_flags(0x80 | 1, 2), "P PS");
  EXPECT_EQ(describe_entry_flags(0x80 | 1, 1), "P PAT");
  EXPECT_EQ(describe_entry_flags((mm::u64{1} << 63) | (1 << 8) | (1 << 9) | (1 << 10) | 1, 1), "P G NX COW PARKED");
}

}  // namespace
