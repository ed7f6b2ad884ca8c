#include "Common.hpp"

#include <cstdlib>

thread_local sigjmp_buf *ccodecs::assertionTarget = nullptr;
thread_local char ccodecs::assertionText[256];

/// glibc's assertion handler, replaced for the whole process: the executable's definition takes precedence over
/// libc's for every shared library. Inside a `ccodecs::guarded` call it returns to the shim with the failure;
/// anywhere else it reports and aborts as glibc's does.
extern "C" void __assert_fail(const char *assertion, const char *file, unsigned int line, const char *function) noexcept {
    if (sigjmp_buf *target = ccodecs::assertionTarget) {
        std::snprintf(ccodecs::assertionText, sizeof ccodecs::assertionText, "%s:%u: %s", file, line, assertion);
        siglongjmp(*target, 1);
    }
    std::fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, function, assertion);
    std::abort();
}
