// Lock annotations in the style of Zircon's TA_* macros. Under Clang they feed
// -Wthread-safety; under GCC they compile to nothing and remain documentation.
#pragma once

#if defined(__clang__)
#define MM_TA(x) __attribute__((x))
#else
#define MM_TA(x)
#endif

#define MM_CAPABILITY(name) MM_TA(capability(name))
#define MM_GUARDED_BY(lock) MM_TA(guarded_by(lock))
#define MM_REQUIRES(...) MM_TA(requires_capability(__VA_ARGS__))
#define MM_EXCLUDES(...) MM_TA(locks_excluded(__VA_ARGS__))
#define MM_ACQUIRE(...) MM_TA(acquire_capability(__VA_ARGS__))
#define MM_RELEASE(...) MM_TA(release_capability(__VA_ARGS__))
#define MM_TRY_ACQUIRE(...) MM_TA(try_acquire_capability(__VA_ARGS__))
#define MM_SCOPED_CAPABILITY MM_TA(scoped_lockable)
#define MM_NO_THREAD_SAFETY_ANALYSIS MM_TA(no_thread_safety_analysis)
