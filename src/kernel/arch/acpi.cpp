#include "arch/acpi.hpp"

#include "boot/physical.hpp"

namespace kernel {

namespace {

struct [[gnu::packed]] Rsdp {
  char signature[8];
  mm::u8 checksum;
  char oem_id[6];
  mm::u8 revision;
  mm::u32 rsdt_address;
  mm::u32 length;
  mm::u64 xsdt_address;
  mm::u8 extended_checksum;
  mm::u8 reserved[3];
};

struct [[gnu::packed]] SdtHeader {
  char signature[4];
  mm::u32 length;
  mm::u8 revision;
  mm::u8 checksum;
  char oem_id[6];
  char oem_table_id[8];
  mm::u32 oem_revision;
  mm::u32 creator_id;
  mm::u32 creator_revision;
};

struct [[gnu::packed]] Madt {
  SdtHeader header;
  mm::u32 local_apic_address;
  mm::u32 flags;
};

bool sums_to_zero(const void* data, mm::u64 length) {
  const auto* bytes = static_cast<const mm::u8*>(data);
  mm::u8 sum = 0;
  for (mm::u64 i = 0; i < length; ++i) sum = static_cast<mm::u8>(sum + bytes[i]);
  return sum == 0;
}

bool same(const char* a, const char* b, int n) {
  for (int i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

const Rsdp* scan(mm::u64 start, mm::u64 length) {
  for (mm::u64 at = start; at + sizeof(Rsdp) <= start + length; at += 16) {
    const auto* rsdp = phys_to_virt<const Rsdp>(at);
    if (same(rsdp->signature, "RSD PTR ", 8) && sums_to_zero(rsdp, 20)) {
      return rsdp;
    }
  }
  return nullptr;
}

const Rsdp* find_rsdp() {
  const mm::u64 ebda = mm::u64{*phys_to_virt<const mm::u16>(0x40E)} << 4;
  if (ebda >= 0x80000 && ebda < 0xA0000) {
    if (const Rsdp* r = scan(ebda, 1024)) return r;
  }
  return scan(0xE0000, 0x20000);
}

const Madt* find_madt(const Rsdp& rsdp) {
  const bool extended = rsdp.revision >= 2 && rsdp.xsdt_address != 0;
  const auto* root = phys_to_virt<const SdtHeader>(extended ? rsdp.xsdt_address : rsdp.rsdt_address);
  if (!sums_to_zero(root, root->length)) {
    return nullptr;
  }
  const mm::u64 entry_size = extended ? 8 : 4;
  const mm::u64 entries = (root->length - sizeof(SdtHeader)) / entry_size;
  const auto* base = reinterpret_cast<const mm::u8*>(root) + sizeof(SdtHeader);
  for (mm::u64 i = 0; i < entries; ++i) {
    mm::u64 address = 0;
    __builtin_memcpy(&address, base + i * entry_size, entry_size);
    const auto* table = phys_to_virt<const SdtHeader>(address);
    if (same(table->signature, "APIC", 4) && sums_to_zero(table, table->length)) {
      return reinterpret_cast<const Madt*>(table);
    }
  }
  return nullptr;
}

}  // namespace

bool acpi_find_cpus(CpuTopology& topology) {
  const Rsdp* rsdp = find_rsdp();
  const Madt* madt = rsdp ? find_madt(*rsdp) : nullptr;
  if (madt == nullptr) {
    return false;
  }
  const auto* at = reinterpret_cast<const mm::u8*>(madt) + sizeof(Madt);
  const auto* end = reinterpret_cast<const mm::u8*>(madt) + madt->header.length;
  while (at + 2 <= end && at[1] >= 2) {
    const mm::u8 type = at[0];
    const mm::u8 length = at[1];
    mm::u32 apic_id = 0;
    mm::u32 flags = 0;
    bool processor = false;
    if (type == 0 && length >= 8) {  // processor local APIC
      apic_id = at[3];
      __builtin_memcpy(&flags, at + 4, 4);
      processor = true;
    } else if (type == 9 && length >= 16) {  // processor local x2APIC
      __builtin_memcpy(&apic_id, at + 4, 4);
      __builtin_memcpy(&flags, at + 8, 4);
      processor = true;
    }
    if (processor && (flags & 1)) {  // enabled
      if (topology.count < mm::kMaxCpus) {
        topology.apic_ids[topology.count++] = apic_id;
      } else {
        ++topology.ignored;
      }
    }
    at += length;
  }
  return topology.count > 0;
}

}  // namespace kernel
