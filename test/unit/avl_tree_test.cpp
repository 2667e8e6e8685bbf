// AvlTree against std::set: randomized insert / erase / find_le / find_ge /
// first / next / prev with AvlTree::check() after every operation, and the
// edge cases: the empty tree, one node, erasing a root with two children,
// the extreme keys, and sorted insertion orders (height within the AVL
// bound of 1.44 log2 n + 2).
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "mm/vm/avl_tree.hpp"
#include "support/rng.hpp"
#include "support/sanitized.hpp"

namespace {

using mm::u64;
using pagelab::test::Rng;

struct Item : mm::AvlNode {
  u64 key = 0;
};
struct ItemKey {
  static u64 key(const Item& item) { return item.key; }
};
using Tree = mm::AvlTree<Item, ItemKey>;

// The tree's height, from any node (the tree does not expose its root).
int height(const Tree& tree) {
  const mm::AvlNode* at = tree.first();
  if (at == nullptr) return 0;
  while (at->parent != nullptr) at = at->parent;
  return at->height;
}
const mm::AvlNode* root_of(const Tree& tree) {
  const mm::AvlNode* at = tree.first();
  while (at != nullptr && at->parent != nullptr) at = at->parent;
  return at;
}
// The AVL bound: a tree of n nodes is at most about 1.44 log2(n + 2) high.
bool within_avl_bound(const Tree& tree) {
  const double n = static_cast<double>(tree.size());
  return tree.size() == 0 || height(tree) <= 1.44 * std::log2(n) + 2;
}

// Items for keys, owned here; the tree only links them.
class Items {
 public:
  Item* get(u64 key) {
    auto& slot = items_[key];
    if (!slot) {
      slot = std::make_unique<Item>();
      slot->key = key;
    }
    return slot.get();
  }

 private:
  std::map<u64, std::unique_ptr<Item>> items_;
};

const Item* expected_le(const std::set<u64>& keys, u64 key, Items& items) {
  auto it = keys.upper_bound(key);
  return it == keys.begin() ? nullptr : items.get(*std::prev(it));
}
const Item* expected_ge(const std::set<u64>& keys, u64 key, Items& items) {
  auto it = keys.lower_bound(key);
  return it == keys.end() ? nullptr : items.get(*it);
}

// In-order traversal both ways equals the set.
void expect_same_order(const Tree& tree, const std::set<u64>& keys) {
  std::vector<u64> forward;
  for (const Item* i = tree.first(); i != nullptr; i = tree.next(i)) forward.push_back(i->key);
  EXPECT_EQ(forward, std::vector<u64>(keys.begin(), keys.end()));
  std::vector<u64> backward;
  if (!keys.empty()) {
    for (const Item* i = tree.find_le(~u64{0}); i != nullptr; i = tree.prev(i)) backward.push_back(i->key);
  }
  EXPECT_EQ(backward, std::vector<u64>(keys.rbegin(), keys.rend()));
}

TEST(AvlTree, EmptyTreeFindsNothing) {
  Tree tree;
  EXPECT_TRUE(tree.empty());
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.first(), nullptr);
  EXPECT_EQ(tree.find_le(0), nullptr);
  EXPECT_EQ(tree.find_le(~u64{0}), nullptr);
  EXPECT_EQ(tree.find_ge(0), nullptr);
  EXPECT_EQ(tree.find_ge(~u64{0}), nullptr);
  EXPECT_TRUE(tree.check());
}

TEST(AvlTree, OneNode) {
  Tree tree;
  Item item;
  item.key = 100;
  tree.insert(&item);
  EXPECT_TRUE(tree.check());
  EXPECT_FALSE(tree.empty());
  EXPECT_EQ(tree.size(), 1u);
  EXPECT_EQ(tree.first(), &item);
  EXPECT_EQ(tree.find_le(100), &item);
  EXPECT_EQ(tree.find_le(1000), &item);
  EXPECT_EQ(tree.find_le(99), nullptr);
  EXPECT_EQ(tree.find_ge(100), &item);
  EXPECT_EQ(tree.find_ge(0), &item);
  EXPECT_EQ(tree.find_ge(101), nullptr);
  EXPECT_EQ(tree.next(&item), nullptr);
  EXPECT_EQ(tree.prev(&item), nullptr);
  tree.erase(&item);
  EXPECT_TRUE(tree.empty());
  EXPECT_TRUE(tree.check());
  EXPECT_EQ(tree.first(), nullptr);
  // An erased node can go back in.
  tree.insert(&item);
  EXPECT_TRUE(tree.check());
  EXPECT_EQ(tree.first(), &item);
  tree.erase(&item);
}

TEST(AvlTree, ExtremeKeys) {
  Tree tree;
  Item low, high, middle;
  low.key = 0;
  high.key = ~u64{0};
  middle.key = u64{1} << 63;
  for (Item* i : {&middle, &high, &low}) tree.insert(i);
  EXPECT_TRUE(tree.check());
  EXPECT_EQ(tree.find_le(0), &low);
  EXPECT_EQ(tree.find_ge(0), &low);
  EXPECT_EQ(tree.find_le(~u64{0}), &high);
  EXPECT_EQ(tree.find_ge(~u64{0}), &high);
  EXPECT_EQ(tree.find_ge(1), &middle);
  EXPECT_EQ(tree.find_le(~u64{0} - 1), &middle);
  EXPECT_EQ(tree.next(&middle), &high);
  EXPECT_EQ(tree.prev(&middle), &low);
  for (Item* i : {&low, &middle, &high}) tree.erase(i);
  EXPECT_TRUE(tree.empty());
}

TEST(AvlTree, EraseRootWithTwoChildren) {
  // Successor is the root's right child (no left subtree there).
  {
    Tree tree;
    Items items;
    for (u64 k : {20, 10, 30}) tree.insert(items.get(k));
    ASSERT_EQ(root_of(tree), items.get(20));
    tree.erase(items.get(20));
    EXPECT_TRUE(tree.check());
    expect_same_order(tree, {10, 30});
  }
  // Successor deep in the right subtree, with a right child of its own.
  {
    Tree tree;
    Items items;
    for (u64 k : {50, 30, 80, 20, 40, 60, 90, 10, 70}) tree.insert(items.get(k));
    ASSERT_TRUE(tree.check());
    ASSERT_EQ(root_of(tree), items.get(50));
    tree.erase(items.get(50));  // successor 60, whose right child 70 moves up
    EXPECT_TRUE(tree.check());
    expect_same_order(tree, {10, 20, 30, 40, 60, 70, 80, 90});
  }
  // The root, again and again, until nothing is left.
  {
    Tree tree;
    Items items;
    std::set<u64> keys;
    for (u64 k = 0; k < 200; ++k) {
      tree.insert(items.get(k * 7 % 200));
      keys.insert(k * 7 % 200);
    }
    while (!tree.empty()) {
      const auto* root = static_cast<const Item*>(root_of(tree));
      keys.erase(root->key);
      tree.erase(items.get(root->key));
      ASSERT_TRUE(tree.check());
      ASSERT_TRUE(within_avl_bound(tree));
      ASSERT_EQ(tree.size(), keys.size());
    }
    expect_same_order(tree, keys);
  }
}

TEST(AvlTree, SortedInsertionsStayBalanced) {
  constexpr u64 kCount = 1000;
  for (const bool ascending : {true, false}) {
    Tree tree;
    Items items;
    std::set<u64> keys;
    for (u64 i = 0; i < kCount; ++i) {
      const u64 key = ascending ? i : kCount - i;
      tree.insert(items.get(key));
      keys.insert(key);
      ASSERT_TRUE(tree.check()) << "after inserting " << key;
      ASSERT_TRUE(within_avl_bound(tree)) << "height " << height(tree) << " for " << tree.size() << " nodes";
    }
    expect_same_order(tree, keys);
    // A perfectly sorted sequence gives a near-perfect tree.
    EXPECT_LE(height(tree), 11);
    // Erasing in order keeps it balanced too.
    for (u64 i = 0; i < kCount; ++i) {
      const u64 key = ascending ? i : kCount - i;
      tree.erase(items.get(key));
      keys.erase(key);
      ASSERT_TRUE(tree.check()) << "after erasing " << key;
      ASSERT_TRUE(within_avl_bound(tree));
    }
    EXPECT_TRUE(tree.empty());
  }
}

// Random operations against std::set. `key_space` small: many collisions,
// many erases of present keys; large: keys spread over all of u64.
void random_stream(u64 seed, u64 ops, u64 key_space) {
  Rng rng(seed);
  Tree tree;
  Items items;
  std::set<u64> keys;
  const auto random_key = [&] { return key_space == 0 ? rng.next() : rng.below(key_space); };
  const auto present_key = [&] { return *std::next(keys.begin(), static_cast<long>(rng.below(keys.size()))); };
  for (u64 op = 0; op < ops; ++op) {
    SCOPED_TRACE(testing::Message() << "seed " << seed << " op " << op);
    const u64 r = rng.below(100);
    if (r < 35 || keys.empty()) {
      u64 key = random_key();
      if (keys.count(key) != 0) {
        if (key_space != 0 && keys.size() == key_space) continue;
        do key = random_key(); while (keys.count(key) != 0);
      }
      tree.insert(items.get(key));
      keys.insert(key);
    } else if (r < 65) {
      const u64 key = present_key();
      tree.erase(items.get(key));
      keys.erase(key);
    } else if (r < 75) {
      const u64 key = rng.percent(50) ? random_key() : present_key() + rng.below(3) - 1;
      ASSERT_EQ(tree.find_le(key), expected_le(keys, key, items)) << "find_le(" << key << ")";
    } else if (r < 85) {
      const u64 key = rng.percent(50) ? random_key() : present_key() + rng.below(3) - 1;
      ASSERT_EQ(tree.find_ge(key), expected_ge(keys, key, items)) << "find_ge(" << key << ")";
    } else if (r < 92) {
      const u64 key = present_key();
      const auto it = keys.find(key);
      const Item* want = std::next(it) == keys.end() ? nullptr : items.get(*std::next(it));
      ASSERT_EQ(tree.next(items.get(key)), want) << "next(" << key << ")";
    } else {
      const u64 key = present_key();
      const auto it = keys.find(key);
      const Item* want = it == keys.begin() ? nullptr : items.get(*std::prev(it));
      ASSERT_EQ(tree.prev(items.get(key)), want) << "prev(" << key << ")";
    }
    ASSERT_TRUE(tree.check());
    ASSERT_EQ(tree.size(), keys.size());
    ASSERT_EQ(tree.empty(), keys.empty());
    ASSERT_EQ(tree.first(), keys.empty() ? nullptr : items.get(*keys.begin()));
    ASSERT_TRUE(within_avl_bound(tree)) << "height " << height(tree) << " for " << tree.size() << " nodes";
    if (op % 256 == 0) expect_same_order(tree, keys);
  }
  expect_same_order(tree, keys);
  for (const u64 key : std::vector<u64>(keys.begin(), keys.end())) tree.erase(items.get(key));
  EXPECT_TRUE(tree.empty());
  EXPECT_TRUE(tree.check());
}

constexpr u64 kOps = pagelab::test::kSanitized ? 2000 : 6000;

TEST(AvlTree, RandomAgainstStdSetSmallKeySpace) {
  for (u64 seed : {1, 2, 3}) random_stream(seed, kOps, 200);
}
TEST(AvlTree, RandomAgainstStdSetMediumKeySpace) {
  for (u64 seed : {4, 5, 6}) random_stream(seed, kOps, 5000);
}
TEST(AvlTree, RandomAgainstStdSetFullKeySpace) {
  for (u64 seed : {7, 8}) random_stream(seed, kOps, 0);
}

}  // namespace
