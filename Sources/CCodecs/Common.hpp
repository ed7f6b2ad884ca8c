#ifndef CCODECS_COMMON_HPP
#define CCODECS_COMMON_HPP

#include "CCodecs.h"

#include <csetjmp>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ccodecs {

/// Copies `message` into the caller's buffer, NUL-terminated and truncated to fit, and returns 1 (failure).
inline int fail(char *error, size_t capacity, const std::string &message) {
    if (error != nullptr && capacity > 0) {
        size_t count = message.size() < capacity - 1 ? message.size() : capacity - 1;
        std::memcpy(error, message.data(), count);
        error[count] = 0;
    }
    return 1;
}

inline uint32_t bytesPerSample(const CCodecs_Image &image) { return image.bitsStored <= 8 ? 1 : 2; }

/// Bytes of a frame in the shared layout; 0 when it does not fit.
inline uint64_t frameBytes(const CCodecs_Image &image) {
    unsigned __int128 total = (unsigned __int128)image.width * image.height * image.components * bytesPerSample(image);
    return total >= ((unsigned __int128)1 << 62) ? 0 : (uint64_t)total;
}

/// Reads sample `index` of the shared layout as a signed integer.
inline int32_t loadSample(const uint8_t *samples, size_t index, const CCodecs_Image &image) {
    if (image.bitsStored <= 8) {
        uint8_t value = samples[index];
        return image.isSigned ? (int32_t)(int8_t)value : (int32_t)value;
    }
    uint16_t value = (uint16_t)(samples[2 * index] | (samples[2 * index + 1] << 8));
    return image.isSigned ? (int32_t)(int16_t)value : (int32_t)value;
}

/// Writes `value` as sample `index` of the shared layout (truncated to the sample width, as a decoder's
/// output of a conforming codestream always fits).
inline void storeSample(uint8_t *samples, size_t index, const CCodecs_Image &image, int32_t value) {
    if (image.bitsStored <= 8) {
        samples[index] = (uint8_t)value;
    } else {
        samples[2 * index] = (uint8_t)value;
        samples[2 * index + 1] = (uint8_t)((uint32_t)value >> 8);
    }
}

inline bool validImage(const CCodecs_Image &image) {
    return image.width > 0 && image.height > 0 && image.components > 0 && image.components <= 4
        && image.bitsStored >= 1 && image.bitsStored <= 16;
}

/// Why an encoder's arguments cannot be used, or null.
inline const char *encodeArgumentProblem(
    const CCodecs_Image *image, const void *samples, size_t length, uint32_t decompositions, CCodecs_Output *output) {
    if (image == nullptr || samples == nullptr || output == nullptr || !validImage(*image))
        return "invalid image description";
    if (length < frameBytes(*image)) return "sample buffer too short";
    if (decompositions > 32) return "too many decompositions";
    return nullptr;
}

/// Where a failed `assert` inside a codec library, or the call's CPU watchdog, jumps back to, on this thread (see
/// Assertions.cpp).
extern thread_local sigjmp_buf *assertionTarget;
/// The failed assertion's text, for the error message.
extern thread_local char assertionText[256];

/// Arms this thread's CPU-time watchdog for one codec call: when the call has used `seconds` of this thread's
/// CPU, a signal sent to this thread jumps back to `guarded`. Some crafted codestreams make
/// a codec library spin for seconds or for ever (CharLS 2.4.1 on a JPEG-LS frame, OpenJPH on bad tile origins),
/// and the per-object deadline is checked between frames only, so the call itself needs a bound. If the timer
/// cannot be created, the call runs unbounded, as it would without it.
void armWatchdog(double seconds);
/// Removes this thread's watchdog timer (after the call returned, or after any jump out of it).
void disarmWatchdog();

/// Runs `work` (a codec call returning 0 or a failure from `fail`) so that an assertion failing inside a codec
/// library fails the call instead of aborting the process (Debian builds OpenJPH with its assertions on, and a
/// crafted codestream trips them), and so that a call that spins is stopped by the watchdog. The jump skips
/// the destructors of the frames it leaves: what the library had allocated for that call leaks, a bounded cost
/// paid only for crafted input.
/// The CPU a call on `workBytes` of samples (decoded or to encode) may use: `CCodecs_callCPULimit()`, plus a
/// second per 4 MiB, far slower than any of the libraries is on a real frame.
inline double cpuAllowance(size_t workBytes) { return CCodecs_callCPULimit() + (double)workBytes / (double)(4 << 20); }

template <typename Work>
int guarded(char *error, size_t errorCapacity, size_t workBytes, Work work) {
    sigjmp_buf target;
    sigjmp_buf *const previous = assertionTarget;
    // The signal mask is saved: the watchdog's jump leaves its signal handler, whose signal must not stay blocked.
    if (const int jumped = sigsetjmp(target, 1); jumped != 0) {
        disarmWatchdog();
        assertionTarget = previous;
        if (jumped == 2) {
            return fail(error, errorCapacity,
                "the codec library used more than " + std::to_string((int)cpuAllowance(workBytes)) + " s of CPU on this frame");
        }
        return fail(error, errorCapacity, std::string("the codec library failed an internal check (") + assertionText + ")");
    }
    assertionTarget = &target;
    armWatchdog(cpuAllowance(workBytes));
    const int result = work();
    disarmWatchdog();
    assertionTarget = previous;
    return result;
}

}  // namespace ccodecs

#endif
