#ifndef CDCMTKSHIM_H
#define CDCMTKSHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The outcome of a shim call, mirroring DCMTK's OFCondition (module, code, text). `code == 0` is success.
typedef struct CDCMTKShim_Status {
    uint16_t module;
    uint16_t code;
    /// Static or thread-local text; copy it before the next call on this thread.
    const char *text;
} CDCMTKShim_Status;

/// An open DICOM file. Not thread-safe: one per task, closed by its opener.
typedef struct CDCMTKShim_File CDCMTKShim_File;

/// Process-wide set-up, run once before any worker starts: checks the data dictionary, registers the JPEG,
/// JPEG-LS and RLE decoders (registration is not thread-safe) and silences oflog.
CDCMTKShim_Status CDCMTKShim_bootstrap(void);

/// Loads a file. Values longer than `maxReadLength` stay on disk until used (DCMTK's lazy loading).
CDCMTKShim_Status CDCMTKShim_open(const char *path, uint32_t maxReadLength, CDCMTKShim_File **file);
void CDCMTKShim_close(CDCMTKShim_File *file);

/// Copies the original transfer syntax UID into `buffer` (NUL-terminated, truncated to `capacity`).
CDCMTKShim_Status CDCMTKShim_transferSyntax(CDCMTKShim_File *file, char *buffer, size_t capacity, size_t *length);

/// Copies the raw bytes of a top-level string element (meta group or data set) into `buffer`.
/// `*length` receives the full value length even when the buffer is too small.
CDCMTKShim_Status CDCMTKShim_getString(
    CDCMTKShim_File *file, uint16_t group, uint16_t element, char *buffer, size_t capacity, size_t *length);

/// Reads a top-level unsigned integer (US, UL or an IS string) of the data set.
CDCMTKShim_Status CDCMTKShim_getUnsigned(CDCMTKShim_File *file, uint16_t group, uint16_t element, uint64_t *value);

typedef enum CDCMTKShim_EventKind {
    CDCMTKShim_Element = 0,
    CDCMTKShim_SequenceStart = 1,
    CDCMTKShim_ItemStart = 2,
    CDCMTKShim_ItemEnd = 3,
    CDCMTKShim_SequenceEnd = 4,
    CDCMTKShim_PixelSequenceStart = 5,
    CDCMTKShim_Fragment = 6,
    CDCMTKShim_PixelSequenceEnd = 7
} CDCMTKShim_EventKind;

/// One visited node. `vr` holds the two VR characters; `length` the value length as DCMTK holds it.
typedef struct CDCMTKShim_Event {
    CDCMTKShim_EventKind kind;
    uint16_t group;
    uint16_t element;
    char vr[2];
    uint32_t length;
    uint32_t depth;
} CDCMTKShim_Event;

/// Returns non-zero to stop the walk.
typedef int (*CDCMTKShim_Visitor)(const CDCMTKShim_Event *event, void *context);

/// Walks the meta group and the data set depth-first, calling `visitor` for every node.
CDCMTKShim_Status CDCMTKShim_visitElements(CDCMTKShim_File *file, CDCMTKShim_Visitor visitor, void *context);

/// Pixel data facts: frame count (Number of Frames, 1 when absent), whether pixel data is encapsulated,
/// and the number of items in its pixel sequence (Basic Offset Table included).
CDCMTKShim_Status CDCMTKShim_pixelDataInfo(
    CDCMTKShim_File *file, uint32_t *numberOfFrames, int *isEncapsulated, uint32_t *itemCount);

/// Length of pixel-sequence item `index` (0 is the Basic Offset Table).
CDCMTKShim_Status CDCMTKShim_fragmentLength(CDCMTKShim_File *file, uint32_t index, uint32_t *length);

/// The index of the pixel-sequence item where frame `frame` starts, as DCMTK's decoders find it.
CDCMTKShim_Status CDCMTKShim_frameStartItem(CDCMTKShim_File *file, uint32_t frame, uint32_t *itemIndex);

/// Size in bytes of one decoded frame.
CDCMTKShim_Status CDCMTKShim_decodedFrameSize(CDCMTKShim_File *file, uint32_t *size);

/// Decodes frame `frame` into `buffer` (little-endian samples, DCMTK's uncompressed layout).
CDCMTKShim_Status CDCMTKShim_decodeFrame(
    CDCMTKShim_File *file, uint32_t frame, void *buffer, size_t capacity, size_t *written);

/// The frame a JPEG stream (baseline, extended, lossless; PS3.5 §A.4.1–A.4.3) holds, read from its SOF marker.
typedef struct CDCMTKShim_JPEGFrame {
    uint32_t width;
    uint32_t height;
    uint32_t components;
    /// Sample precision P of the SOF marker (8, 12 or up to 16 for lossless).
    uint32_t precision;
} CDCMTKShim_JPEGFrame;

/// Decodes one JPEG frame from memory with DCMTK's IJG decoders (8, 12 or 16 bit by the stream's precision),
/// into interleaved samples: one byte each up to 8 bits of precision, else two bytes little endian.
/// `convertYBR` converts YCbCr to RGB (for YBR photometric interpretations, as DCMTK's own decompression does);
/// lossless streams are never converted. `frame` receives the geometry, `*written` the bytes written.
CDCMTKShim_Status CDCMTKShim_decodeJPEG(
    const uint8_t *stream, size_t length, int convertYBR, CDCMTKShim_JPEGFrame *frame, void *buffer,
    size_t capacity, size_t *written);

#ifdef __cplusplus
}
#endif

#endif
