// AvlTree: an intrusive, height-balanced binary search tree. Nodes embed
// an AvlNode and are owned by the caller; the tree allocates nothing. Lookup,
// insertion and removal are O(log n) worst case; in-order steps are O(1)
// amortized through parent links.
//
// KeyOf is a type with `static u64 key(const T&)`. Keys must be unique.
#pragma once

#include "mm/base/panic.hpp"
#include "mm/base/types.hpp"

namespace mm {

struct AvlNode {
  AvlNode* left = nullptr;
  AvlNode* right = nullptr;
  AvlNode* parent = nullptr;
  int height = 1;
};

template <typename T, typename KeyOf>
class AvlTree {
  static_assert(__is_base_of(AvlNode, T));

 public:
  bool empty() const { return root_ == nullptr; }
  usize size() const { return size_; }

  void insert(T* item) {
    AvlNode* node = item;
    *node = AvlNode{};
    const u64 key = KeyOf::key(*item);
    AvlNode** link = &root_;
    AvlNode* parent = nullptr;
    while (*link != nullptr) {
      parent = *link;
      const u64 other = key_of(parent);
      MM_ASSERT(key != other);
      link = key < other ? &parent->left : &parent->right;
    }
    node->parent = parent;
    *link = node;
    ++size_;
    rebalance_from(parent);
  }

  void erase(T* item) {
    AvlNode* node = item;
    AvlNode* rebalance_at = nullptr;
    if (node->left != nullptr && node->right != nullptr) {
      // Swap in the successor (leftmost of the right subtree).
      AvlNode* successor = node->right;
      while (successor->left != nullptr) successor = successor->left;
      rebalance_at = successor->parent == node ? successor : successor->parent;
      // Detach the successor (it has no left child).
      if (successor->parent != node) {
        replace_child(successor->parent, successor, successor->right);
        if (successor->right) successor->right->parent = successor->parent;
        successor->right = node->right;
        successor->right->parent = successor;
      }
      successor->left = node->left;
      successor->left->parent = successor;
      replace_child(node->parent, node, successor);
      successor->parent = node->parent;
      successor->height = node->height;
    } else {
      AvlNode* child = node->left != nullptr ? node->left : node->right;
      replace_child(node->parent, node, child);
      if (child) child->parent = node->parent;
      rebalance_at = node->parent;
    }
    *node = AvlNode{};
    --size_;
    rebalance_from(rebalance_at);
  }

  // The item with the greatest key <= `key`, or null.
  T* find_le(u64 key) const {
    AvlNode* best = nullptr;
    for (AvlNode* at = root_; at != nullptr;) {
      if (key_of(at) <= key) {
        best = at;
        at = at->right;
      } else {
        at = at->left;
      }
    }
    return as_item(best);
  }

  // The item with the least key >= `key`, or null.
  T* find_ge(u64 key) const {
    AvlNode* best = nullptr;
    for (AvlNode* at = root_; at != nullptr;) {
      if (key_of(at) >= key) {
        best = at;
        at = at->left;
      } else {
        at = at->right;
      }
    }
    return as_item(best);
  }

  T* first() const {
    AvlNode* at = root_;
    while (at && at->left) at = at->left;
    return as_item(at);
  }

  T* next(const T* item) const {
    const AvlNode* at = item;
    if (at->right) {
      at = at->right;
      while (at->left) at = at->left;
      return as_item(const_cast<AvlNode*>(at));
    }
    while (at->parent && at->parent->right == at) at = at->parent;
    return as_item(at->parent);
  }

  T* prev(const T* item) const {
    const AvlNode* at = item;
    if (at->left) {
      at = at->left;
      while (at->right) at = at->right;
      return as_item(const_cast<AvlNode*>(at));
    }
    while (at->parent && at->parent->left == at) at = at->parent;
    return as_item(at->parent);
  }

  // Checks every AVL and ordering invariant; for tests. Returns false on a violation.
  bool check() const {
    usize count = 0;
    return check_subtree(root_, nullptr, count) >= 0 && count == size_;
  }

 private:
  static u64 key_of(const AvlNode* node) { return KeyOf::key(*static_cast<const T*>(node)); }
  static T* as_item(AvlNode* node) { return static_cast<T*>(node); }
  static int height(const AvlNode* node) { return node ? node->height : 0; }
  static void update_height(AvlNode* node) {
    const int l = height(node->left), r = height(node->right);
    node->height = 1 + (l > r ? l : r);
  }

  void replace_child(AvlNode* parent, AvlNode* old_child, AvlNode* new_child) {
    if (parent == nullptr) {
      root_ = new_child;
    } else if (parent->left == old_child) {
      parent->left = new_child;
    } else {
      parent->right = new_child;
    }
  }

  // Rotates `node` down to the left; its right child takes its place.
  AvlNode* rotate_left(AvlNode* node) {
    AvlNode* pivot = node->right;
    MM_ASSERT(pivot != nullptr);  // only called on a right-heavy node
    node->right = pivot->left;
    if (pivot->left) pivot->left->parent = node;
    pivot->parent = node->parent;
    replace_child(node->parent, node, pivot);
    pivot->left = node;
    node->parent = pivot;
    update_height(node);
    update_height(pivot);
    return pivot;
  }

  AvlNode* rotate_right(AvlNode* node) {
    AvlNode* pivot = node->left;
    MM_ASSERT(pivot != nullptr);  // only called on a left-heavy node
    node->left = pivot->right;
    if (pivot->right) pivot->right->parent = node;
    pivot->parent = node->parent;
    replace_child(node->parent, node, pivot);
    pivot->right = node;
    node->parent = pivot;
    update_height(node);
    update_height(pivot);
    return pivot;
  }

  // Restores heights and balance from `node` up to the root.
  void rebalance_from(AvlNode* node) {
    while (node != nullptr) {
      update_height(node);
      const int balance = height(node->left) - height(node->right);
      if (balance > 1) {
        if (height(node->left->left) < height(node->left->right)) rotate_left(node->left);
        node = rotate_right(node);
      } else if (balance < -1) {
        if (height(node->right->right) < height(node->right->left)) rotate_right(node->right);
        node = rotate_left(node);
      }
      node = node->parent;
    }
  }

  int check_subtree(const AvlNode* node, const AvlNode* parent, usize& count) const {
    if (node == nullptr) return 0;
    if (node->parent != parent) return -1;
    if (node->left && key_of(node->left) >= key_of(node)) return -1;
    if (node->right && key_of(node->right) <= key_of(node)) return -1;
    const int l = check_subtree(node->left, node, count);
    const int r = check_subtree(node->right, node, count);
    if (l < 0 || r < 0 || l - r > 1 || r - l > 1) return -1;
    const int h = 1 + (l > r ? l : r);
    if (node->height != h) return -1;
    ++count;
    return h;
  }

  AvlNode* root_ = nullptr;
  usize size_ = 0;
};

}  // namespace mm
