#ifndef CCODECS_H
#define CCODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The only code that sees the codec libraries' headers (OpenJPH, OpenJPEG, CharLS). A plain-C surface: no C++
/// exception crosses it, every call reports failure as a non-zero return with a message in `error`. The libraries
/// trust what they parse (assertions, unbounded loops and allocations on crafted input): the engine calls their
/// decoders on outside input only inside a codec helper process (DICOMPixels' `CodecHelperPool`).
///
/// Samples are exchanged in one layout: interleaved components (R G B R G B ...), one byte per sample when
/// `bitsStored` is at most 8, else two bytes little endian; signed samples in two's complement. It is the layout
/// HealthImaging's checksums are computed over (spec §3.4).

/// The geometry and sample format of one frame.
typedef struct CCodecs_Image {
    uint32_t width;
    uint32_t height;
    uint32_t components;
    /// Significant bits per sample (1 to 16).
    uint32_t bitsStored;
    int isSigned;
} CCodecs_Image;

/// A buffer the library allocated; release it with `CCodecs_free`.
typedef struct CCodecs_Output {
    uint8_t *data;
    size_t length;
} CCodecs_Output;

void CCodecs_free(CCodecs_Output *output);

/// Process-wide set-up, run once before any worker starts: routes OpenJPH's messages to the shim (its defaults
/// print to stderr and are process-wide globals).
void CCodecs_bootstrap(void);

/// Bytes one frame takes in the shared layout, or 0 when the product does not fit in 62 bits.
uint64_t CCodecs_frameBytes(const CCodecs_Image *image);

/// Encodes a frame as an HTJ2K codestream: reversible 5/3 wavelet, HT block coder, 64×64 code blocks, RPCL
/// progression, `decompositions` wavelet levels, the reversible colour transform when `colorTransform` is set
/// (three components only). OpenJPH writes one tile-part and no TLM marker.
int CCodecs_htj2kEncode(
    const CCodecs_Image *image, const void *samples, size_t length, uint32_t decompositions, int colorTransform,
    CCodecs_Output *output, char *error, size_t errorCapacity);

/// Where the packets of each resolution end in an RPCL codestream of one tile, found by letting OpenJPH parse
/// the codestream limited to 1, 2, ... resolutions and recording how far it read. `ends` receives
/// `decompositions + 1` absolute offsets, lowest resolution first; the last is the end of the tile data.
int CCodecs_htj2kResolutionEnds(
    const uint8_t *codestream, size_t length, uint64_t *ends, size_t capacity, size_t *count,
    char *error, size_t errorCapacity);

/// Decodes an HTJ2K codestream, dropping the `skipResolutions` highest resolutions. `image` receives the decoded
/// geometry; `samples` must hold `CCodecs_frameBytes` of it (`*written` is set).
int CCodecs_htj2kDecode(
    const uint8_t *codestream, size_t length, uint32_t skipResolutions, CCodecs_Image *image, void *samples,
    size_t capacity, size_t *written, char *error, size_t errorCapacity);

/// Decodes a JPEG 2000 codestream or JP2 file (Part 1, and HTJ2K, which OpenJPEG also reads) with OpenJPEG.
int CCodecs_j2kDecode(
    const uint8_t *codestream, size_t length, uint32_t skipResolutions, CCodecs_Image *image, void *samples,
    size_t capacity, size_t *written, char *error, size_t errorCapacity);

/// Encodes a frame as a lossless JPEG 2000 codestream (reversible 5/3, one layer, `decompositions` levels, the
/// reversible colour transform when `colorTransform` is set) with OpenJPEG.
int CCodecs_j2kEncodeLossless(
    const CCodecs_Image *image, const void *samples, size_t length, uint32_t decompositions, int colorTransform,
    CCodecs_Output *output, char *error, size_t errorCapacity);

/// Decodes a JPEG-LS stream (lossless or near-lossless) with CharLS, interleaving components if it was coded
/// component by component.
int CCodecs_jpeglsDecode(
    const uint8_t *stream, size_t length, CCodecs_Image *image, void *samples, size_t capacity, size_t *written,
    char *error, size_t errorCapacity);

/// A set of CPUs (glibc's `cpu_set_t`, which Swift's Glibc module does not export).
typedef struct CCodecs_CPUMask {
    uint64_t bits[16];
} CCodecs_CPUMask;

/// The CPU the calling thread runs on, or -1.
int CCodecs_currentCPU(void);

/// Restricts thread or process `pid` (0: the calling thread) to `cpu`; 0 on success.
int CCodecs_pinToCPU(int pid, int cpu);

/// The calling thread's CPU mask into `mask`; 0 on success.
int CCodecs_getAffinity(CCodecs_CPUMask *mask);

/// Sets the calling thread's CPU mask; 0 on success.
int CCodecs_setAffinity(const CCodecs_CPUMask *mask);

/// Returns the allocator's free memory to the system (glibc's `malloc_trim(0)`, which Swift's Glibc module does
/// not export); 1 when some was released.
int CCodecs_trimMemory(void);

#ifdef __cplusplus
}
#endif

#endif
