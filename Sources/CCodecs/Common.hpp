#ifndef CCODECS_COMMON_HPP
#define CCODECS_COMMON_HPP

#include "CCodecs.h"

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

}  // namespace ccodecs

#endif
