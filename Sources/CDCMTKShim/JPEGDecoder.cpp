// JPEG frames decoded from memory with DCMTK's IJG decoders; no C++ exception crosses into Swift.
#include "CDCMTKShim.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmjpeg/djcparam.h>
#include <dcmtk/dcmjpeg/djdijg12.h>
#include <dcmtk/dcmjpeg/djdijg16.h>
#include <dcmtk/dcmjpeg/djdijg8.h>

#include <memory>
#include <string>

namespace {

thread_local std::string lastJPEGText;

CDCMTKShim_Status jpegFailure(uint16_t code, const std::string &text) {
    lastJPEGText = text;
    return CDCMTKShim_Status{0xFFFF, code, lastJPEGText.c_str()};
}

/// Finds the SOF marker (any of C0–CF but DHT C4, JPG C8 and DAC CC) and reads its frame header.
bool readFrameHeader(const uint8_t *data, size_t length, CDCMTKShim_JPEGFrame *frame, bool *lossless) {
    size_t offset = 2;
    if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
    while (offset + 4 <= length) {
        if (data[offset] != 0xFF) return false;
        uint8_t marker = data[offset + 1];
        if (marker == 0xFF) { ++offset; continue; }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { offset += 2; continue; }
        size_t segment = ((size_t)data[offset + 2] << 8) | data[offset + 3];
        if (segment < 2 || offset + 2 + segment > length) return false;
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            if (segment < 8) return false;
            const uint8_t *header = data + offset + 4;
            frame->precision = header[0];
            frame->height = ((uint32_t)header[1] << 8) | header[2];
            frame->width = ((uint32_t)header[3] << 8) | header[4];
            frame->components = header[5];
            *lossless = marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF;
            return true;
        }
        if (marker == 0xDA) return false;
        offset += 2 + segment;
    }
    return false;
}

}  // namespace

extern "C" CDCMTKShim_Status CDCMTKShim_decodeJPEG(
    const uint8_t *stream, size_t length, int convertYBR, CDCMTKShim_JPEGFrame *frame, void *buffer,
    size_t capacity, size_t *written) {
    try {
        bool lossless = false;
        if (stream == nullptr || frame == nullptr || written == nullptr || !readFrameHeader(stream, length, frame, &lossless))
            return jpegFailure(1, "no JPEG frame header (SOI then SOF) in the stream");
        if (frame->width == 0 || frame->height == 0 || frame->components == 0 || frame->components > 4
            || frame->precision < 2 || frame->precision > 16)
            return jpegFailure(2, "JPEG frame header with unsupported geometry or precision");
        const size_t bytesPerSample = frame->precision <= 8 ? 1 : 2;
        const unsigned __int128 needed =
            (unsigned __int128)frame->width * frame->height * frame->components * bytesPerSample;
        if (length > 0xFFFFFFFFu) return jpegFailure(3, "JPEG stream longer than 4 GiB");
        if (buffer == nullptr || needed > capacity || needed > 0xFFFFFFFFu)
            return jpegFailure(3, "the decoded JPEG frame does not fit the buffer");
        DJCodecParameter parameters(
            ECC_lossyYCbCr, (convertYBR && !lossless) ? EDC_photometricInterpretation : EDC_never, EUC_never,
            EPC_colorByPixel);
        const OFBool isYBR = (convertYBR && !lossless) ? OFTrue : OFFalse;
        std::unique_ptr<DJDecoder> decoder;
        if (frame->precision <= 8) decoder.reset(new DJDecompressIJG8Bit(parameters, isYBR));
        else if (frame->precision <= 12) decoder.reset(new DJDecompressIJG12Bit(parameters, isYBR));
        else decoder.reset(new DJDecompressIJG16Bit(parameters, isYBR));
        OFCondition condition = decoder->init();
        if (condition.good())
            condition = decoder->decode(
                const_cast<Uint8 *>(stream), (Uint32)length, (Uint8 *)buffer, (Uint32)needed, OFFalse);
        if (condition.bad()) return jpegFailure(4, std::string("JPEG decoding failed: ") + condition.text());
        *written = (size_t)needed;
        return CDCMTKShim_Status{0, 0, ""};
    } catch (...) {
        return jpegFailure(0xFFFF, "unexpected C++ exception inside DCMTK's JPEG decoder");
    }
}
