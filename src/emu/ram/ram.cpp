#include "emu/ram/ram.hpp"

#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pagelab::emu {

namespace bip = boost::interprocess;

struct Ram::Mapping {
  bip::mapped_region region;
};

std::optional<RamSpec> RamSpec::parse(const std::string& text, std::string& error) {
  if (text == "anon" || text == "anonymous") return RamSpec{};
  if (text.rfind("shm:", 0) == 0 && text.size() > 4) {
    const std::string name = text.substr(4);
    if (name.find('/') == std::string::npos && name.size() < 200) return RamSpec{RamSpec::Kind::SharedMemory, name};
    error = "shared-memory name '" + name + "' must not contain '/'";
    return std::nullopt;
  }
  if (text.rfind("file:", 0) == 0 && text.size() > 5) return RamSpec{RamSpec::Kind::File, text.substr(5)};
  error = "--ram takes 'anon', 'shm:NAME' or 'file:PATH', not '" + text + "'";
  return std::nullopt;
}

std::string RamSpec::describe() const {
  switch (kind) {
    case Kind::Anonymous: return "anon";
    case Kind::SharedMemory: return "shm:" + name;
    case Kind::File: return "file:" + name;
  }
  return "?";
}

Ram::Ram(std::unique_ptr<Mapping> mapping, std::byte* base, std::uint64_t bytes)
    : mapping_(std::move(mapping)), base_(base), bytes_(bytes) {}

Ram::~Ram() = default;

std::unique_ptr<Ram> Ram::create(const RamSpec& spec, std::uint64_t bytes, std::string& error) {
  if (bytes == 0 || bytes % 4096 != 0) {
    error = "RAM size must be a non-zero multiple of 4 KiB";
    return nullptr;
  }
  const std::uint64_t total = bytes + kHeaderBytes;
  auto mapping = std::make_unique<Mapping>();
  try {
    switch (spec.kind) {
      case RamSpec::Kind::Anonymous:
        mapping->region = bip::anonymous_shared_memory(total);
        break;
      case RamSpec::Kind::SharedMemory: {
        bip::shared_memory_object::remove(spec.name.c_str());
        bip::shared_memory_object object(bip::create_only, spec.name.c_str(), bip::read_write);
        object.truncate(static_cast<bip::offset_t>(total));
        mapping->region = bip::mapped_region(object, bip::read_write);
        break;
      }
      case RamSpec::Kind::File: {
        // Created here, in a directory that must exist (none is made), and
        // sized; a path that cannot be is "PATH: REASON".
        const int fd = ::open(spec.name.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
          error = spec.name + ": " + std::strerror(errno);
          return nullptr;
        }
        const bool sized = ::ftruncate(fd, static_cast<off_t>(total)) == 0;
        const int size_error = errno;
        ::close(fd);
        if (!sized) {
          error = spec.name + ": cannot make it " + std::to_string(total) + " bytes: " + std::strerror(size_error);
          return nullptr;
        }
        bip::file_mapping file(spec.name.c_str(), bip::read_write);
        mapping->region = bip::mapped_region(file, bip::read_write);
        break;
      }
    }
  } catch (const bip::interprocess_exception& e) {
    error = "cannot create RAM " + spec.describe() + ": " + e.what();
    return nullptr;
  }
  // Every kind is a fresh object (anonymous, a shm object just created, a
  // file just truncated): the OS hands it over zeroed, page by page as it is
  // touched. Clearing it here would touch every page of RAM for nothing.
  auto* base = static_cast<std::byte*>(mapping->region.get_address());
  RamHeader& header = *reinterpret_cast<RamHeader*>(base);
  std::memcpy(header.magic, RamHeader::kMagic, sizeof(header.magic));
  header.ram_bytes = bytes;
  return std::unique_ptr<Ram>(new Ram(std::move(mapping), base, bytes));
}

std::unique_ptr<Ram> Ram::open_read_only(const RamSpec& spec, std::string& error) {
  auto mapping = std::make_unique<Mapping>();
  try {
    switch (spec.kind) {
      case RamSpec::Kind::Anonymous:
        error = "an anonymous RAM cannot be opened by another process: run with --ram shm:NAME or --ram file:PATH";
        return nullptr;
      case RamSpec::Kind::SharedMemory: {
        bip::shared_memory_object object(bip::open_only, spec.name.c_str(), bip::read_only);
        mapping->region = bip::mapped_region(object, bip::read_only);
        break;
      }
      case RamSpec::Kind::File: {
        bip::file_mapping file(spec.name.c_str(), bip::read_only);
        mapping->region = bip::mapped_region(file, bip::read_only);
        break;
      }
    }
  } catch (const bip::interprocess_exception& e) {
    error = "cannot open RAM " + spec.describe() + ": " + e.what();
    return nullptr;
  }
  auto* base = static_cast<std::byte*>(mapping->region.get_address());
  const std::uint64_t size = mapping->region.get_size();
  const RamHeader& header = *reinterpret_cast<const RamHeader*>(base);
  if (size < kHeaderBytes || std::memcmp(header.magic, RamHeader::kMagic, sizeof(header.magic)) != 0 ||
      header.ram_bytes + kHeaderBytes > size) {
    error = spec.describe() + " is not a pagelab RAM (no header)";
    return nullptr;
  }
  return std::unique_ptr<Ram>(new Ram(std::move(mapping), base, header.ram_bytes));
}

void Ram::record_space(const std::string& name, std::uint64_t cr3) {
  RamHeader& h = header();
  for (std::uint32_t i = 0; i < h.space_count; ++i) {
    if (std::strncmp(h.spaces[i].name, name.c_str(), sizeof(h.spaces[i].name)) == 0) {
      h.spaces[i].cr3 = cr3;
      return;
    }
  }
  if (h.space_count == RamHeader::kMaxSpaces) return;
  RamHeader::Space& s = h.spaces[h.space_count++];
  std::strncpy(s.name, name.c_str(), sizeof(s.name) - 1);
  s.cr3 = cr3;
}

void Ram::forget_spaces() {
  RamHeader& h = header();
  std::memset(h.spaces, 0, sizeof(RamHeader::Space) * h.space_count);
  h.space_count = 0;
}

}  // namespace pagelab::emu
