#include "mm/base/status.hpp"

namespace mm {

const char* errno_name(Status status) {
  switch (status) {
    case Status::Ok: return "OK";
    case Status::InvalidArgument: return "EINVAL";
    case Status::OutOfMemory: return "ENOMEM";
    case Status::Busy: return "EBUSY";
    case Status::AlreadyExists: return "EEXIST";
    case Status::NotFound: return "ENOENT";
    case Status::BadAddress: return "EFAULT";
    case Status::NotSupported: return "EOPNOTSUPP";
    case Status::TooBig: return "E2BIG";
  }
  return "E?";
}

const char* describe(Status status) {
  switch (status) {
    case Status::Ok: return "success";
    case Status::InvalidArgument: return "invalid argument";
    case Status::OutOfMemory: return "out of memory";
    case Status::Busy: return "busy";
    case Status::AlreadyExists: return "already exists";
    case Status::NotFound: return "not found";
    case Status::BadAddress: return "bad address";
    case Status::NotSupported: return "not supported";
    case Status::TooBig: return "too many entries";
  }
  return "unknown status";
}

}  // namespace mm
