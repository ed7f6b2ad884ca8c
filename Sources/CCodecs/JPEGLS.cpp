#include "Common.hpp"

#include <charls/charls.h>

#include <dlfcn.h>

#include <vector>

namespace {

/// CharLS 2 is loaded with `RTLD_LOCAL`, never linked: DCMTK's JPEG-LS codec calls the CharLS 1 functions of its
/// own bundled copy (`JpegLsDecode`, ...) by unversioned names that CharLS 2 exports too with another ABI; linked,
/// the dynamic linker binds DCMTK's calls to CharLS 2 and DCMTK's JPEG-LS decoding corrupts memory.
struct CharLS {
    decltype(&charls_jpegls_decoder_create) create = nullptr;
    decltype(&charls_jpegls_decoder_destroy) destroy = nullptr;
    decltype(&charls_jpegls_decoder_set_source_buffer) setSource = nullptr;
    decltype(&charls_jpegls_decoder_read_header) readHeader = nullptr;
    decltype(&charls_jpegls_decoder_get_frame_info) frameInfo = nullptr;
    decltype(&charls_jpegls_decoder_get_interleave_mode) interleaveMode = nullptr;
    decltype(&charls_jpegls_decoder_decode_to_buffer) decode = nullptr;
    decltype(&charls_get_error_message) errorMessage = nullptr;
    bool loaded = false;

    CharLS() {
        void *library = dlopen("libcharls.so.2", RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr) return;
        create = (decltype(create))dlsym(library, "charls_jpegls_decoder_create");
        destroy = (decltype(destroy))dlsym(library, "charls_jpegls_decoder_destroy");
        setSource = (decltype(setSource))dlsym(library, "charls_jpegls_decoder_set_source_buffer");
        readHeader = (decltype(readHeader))dlsym(library, "charls_jpegls_decoder_read_header");
        frameInfo = (decltype(frameInfo))dlsym(library, "charls_jpegls_decoder_get_frame_info");
        interleaveMode = (decltype(interleaveMode))dlsym(library, "charls_jpegls_decoder_get_interleave_mode");
        decode = (decltype(decode))dlsym(library, "charls_jpegls_decoder_decode_to_buffer");
        errorMessage = (decltype(errorMessage))dlsym(library, "charls_get_error_message");
        loaded = create && destroy && setSource && readHeader && frameInfo && interleaveMode && decode && errorMessage;
    }
};

const CharLS &loadedCharLS() {
    static const CharLS library;
    return library;
}

struct Decoder {
    charls_jpegls_decoder *decoder = loadedCharLS().create();
    ~Decoder() {
        if (decoder != nullptr) loadedCharLS().destroy(decoder);
    }
};

std::string describe(charls_jpegls_errc code) { return loadedCharLS().errorMessage(code); }

}  // namespace

extern "C" int CCodecs_jpeglsDecode(
    const uint8_t *stream, size_t length, CCodecs_Image *image, void *samples, size_t capacity, size_t *written,
    char *error, size_t errorCapacity) {
    if (stream == nullptr || image == nullptr || written == nullptr)
        return ccodecs::fail(error, errorCapacity, "invalid arguments");
    if (!loadedCharLS().loaded) return ccodecs::fail(error, errorCapacity, "CharLS 2 (libcharls.so.2) cannot be loaded");
    try {
        Decoder owned;
        if (owned.decoder == nullptr) return ccodecs::fail(error, errorCapacity, "cannot create a JPEG-LS decoder");
        charls_jpegls_errc code = loadedCharLS().setSource(owned.decoder, stream, length);
        if (code == charls_jpegls_errc{}) code = loadedCharLS().readHeader(owned.decoder);
        charls_frame_info frame{};
        if (code == charls_jpegls_errc{}) code = loadedCharLS().frameInfo(owned.decoder, &frame);
        charls_interleave_mode interleave{};
        if (code == charls_jpegls_errc{}) code = loadedCharLS().interleaveMode(owned.decoder, &interleave);
        if (code != charls_jpegls_errc{}) return ccodecs::fail(error, errorCapacity, "JPEG-LS header: " + describe(code));
        CCodecs_Image decoded;
        decoded.width = frame.width;
        decoded.height = frame.height;
        decoded.components = (uint32_t)frame.component_count;
        decoded.bitsStored = (uint32_t)frame.bits_per_sample;
        decoded.isSigned = 0;
        if (!ccodecs::validImage(decoded)) return ccodecs::fail(error, errorCapacity, "unsupported geometry or bit depth");
        *image = decoded;
        uint64_t needed = ccodecs::frameBytes(decoded);
        if (samples == nullptr || needed == 0 || needed > capacity)
            return ccodecs::fail(error, errorCapacity, "the decoded frame does not fit the buffer");
        bool planar = decoded.components > 1 && interleave == charls_interleave_mode{};
        if (!planar) {
            code = loadedCharLS().decode(owned.decoder, samples, (size_t)needed, 0);
            if (code != charls_jpegls_errc{}) return ccodecs::fail(error, errorCapacity, "JPEG-LS: " + describe(code));
        } else {
            // Coded component by component (ILV=0): CharLS returns planes; interleave them.
            std::vector<uint8_t> planes((size_t)needed);
            code = loadedCharLS().decode(owned.decoder, planes.data(), planes.size(), 0);
            if (code != charls_jpegls_errc{}) return ccodecs::fail(error, errorCapacity, "JPEG-LS: " + describe(code));
            const size_t bytes = ccodecs::bytesPerSample(decoded);
            const size_t pixels = (size_t)decoded.width * decoded.height;
            uint8_t *target = (uint8_t *)samples;
            for (size_t component = 0; component < decoded.components; ++component)
                for (size_t pixel = 0; pixel < pixels; ++pixel)
                    std::memcpy(target + (pixel * decoded.components + component) * bytes,
                                planes.data() + (component * pixels + pixel) * bytes, bytes);
        }
        *written = (size_t)needed;
        return 0;
    } catch (const std::exception &exception) {
        return ccodecs::fail(error, errorCapacity, exception.what());
    } catch (...) {
        return ccodecs::fail(error, errorCapacity, "JPEG-LS decoding failed");
    }
}
