#include "console/kprintf.hpp"

#include "console/serial.hpp"
#include "platform/spinlock.hpp"

namespace kernel {

namespace {

SpinLock console_lock{mm::LockClass::Console};

class Buffer {
 public:
  void put(char c) {
    if (length_ < sizeof(data_)) {
      data_[length_++] = c;
    }
  }
  void put(const char* s) {
    while (*s) put(*s++);
  }
  const char* data() const { return data_; }
  unsigned long length() const { return length_; }

 private:
  char data_[512];
  unsigned long length_ = 0;
};

void put_number(Buffer& out, unsigned long long value, unsigned base, int width, char pad, bool negative) {
  char digits[24];
  int n = 0;
  do {
    const unsigned d = static_cast<unsigned>(value % base);
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    value /= base;
  } while (value != 0);
  if (negative) {
    if (pad == '0') {
      out.put('-');
    } else {
      digits[n++] = '-';
    }
    --width;
  }
  for (int i = n; i < width; ++i) out.put(pad);
  while (n > 0) out.put(digits[--n]);
}

void format(Buffer& out, const char* f, __builtin_va_list args) {
  for (; *f; ++f) {
    if (*f != '%') {
      if (*f == '\n') out.put('\r');
      out.put(*f);
      continue;
    }
    ++f;
    bool left = false;
    if (*f == '-') {
      left = true;
      ++f;
    }
    char pad = ' ';
    if (*f == '0') {
      pad = '0';
      ++f;
    }
    int width = 0;
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    int precision = -1;
    if (*f == '.') {
      ++f;
      if (*f == '*') {
        precision = __builtin_va_arg(args, int);
        ++f;
      } else {
        precision = 0;
        while (*f >= '0' && *f <= '9') precision = precision * 10 + (*f++ - '0');
      }
    }
    int longs = 0;
    while (*f == 'l') {
      ++longs;
      ++f;
    }
    switch (*f) {
      case 'd': {
        const long long v = longs ? __builtin_va_arg(args, long long) : __builtin_va_arg(args, int);
        put_number(out, v < 0 ? 0ull - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v), 10,
                   width, pad, v < 0);
        break;
      }
      case 'u':
      case 'x': {
        const unsigned long long v =
            longs ? __builtin_va_arg(args, unsigned long long) : __builtin_va_arg(args, unsigned);
        put_number(out, v, *f == 'u' ? 10 : 16, width, pad, false);
        break;
      }
      case 'p':
        out.put("0x");
        put_number(out, reinterpret_cast<unsigned long long>(__builtin_va_arg(args, void*)), 16, 16, '0', false);
        break;
      case 's': {
        const char* s = __builtin_va_arg(args, const char*);
        s = s ? s : "(null)";
        int n = 0;
        while (s[n] && (precision < 0 || n < precision)) ++n;
        for (int i = n; !left && i < width; ++i) out.put(' ');
        for (int i = 0; i < n; ++i) out.put(s[i]);
        for (int i = n; left && i < width; ++i) out.put(' ');
        break;
      }
      case 'c':
        out.put(static_cast<char>(__builtin_va_arg(args, int)));
        break;
      case '%':
        out.put('%');
        break;
      default:
        out.put('?');
        if (*f == 0) return;
    }
  }
}

}  // namespace

void kprintf(const char* f, ...) {
  Buffer out;
  __builtin_va_list args;
  __builtin_va_start(args, f);
  format(out, f, args);
  __builtin_va_end(args);
  console_lock.lock();
  serial_write(out.data(), out.length());
  console_lock.unlock();
}

}  // namespace kernel
