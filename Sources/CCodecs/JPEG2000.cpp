#include "Common.hpp"

#include <openjpeg-2.5/openjpeg.h>

#include <cstdlib>
#include <vector>

namespace {

struct MemoryReader {
    const uint8_t *data;
    size_t size;
    size_t position;
};

OPJ_SIZE_T readMemory(void *buffer, OPJ_SIZE_T count, void *context) {
    MemoryReader *reader = (MemoryReader *)context;
    size_t available = reader->size - reader->position;
    if (available == 0) return (OPJ_SIZE_T)-1;
    size_t taken = count < available ? count : available;
    std::memcpy(buffer, reader->data + reader->position, taken);
    reader->position += taken;
    return taken;
}

OPJ_OFF_T skipMemory(OPJ_OFF_T count, void *context) {
    MemoryReader *reader = (MemoryReader *)context;
    if (count < 0) {
        if ((size_t)(-count) > reader->position) return -1;
    } else if ((size_t)count > reader->size - reader->position) {
        count = (OPJ_OFF_T)(reader->size - reader->position);
    }
    reader->position = (size_t)((OPJ_OFF_T)reader->position + count);
    return count;
}

OPJ_BOOL seekMemory(OPJ_OFF_T offset, void *context) {
    MemoryReader *reader = (MemoryReader *)context;
    if (offset < 0 || (size_t)offset > reader->size) return OPJ_FALSE;
    reader->position = (size_t)offset;
    return OPJ_TRUE;
}

struct MemoryWriter {
    std::vector<uint8_t> bytes;
    size_t position = 0;
};

OPJ_SIZE_T writeMemory(void *buffer, OPJ_SIZE_T count, void *context) {
    MemoryWriter *writer = (MemoryWriter *)context;
    if (writer->position + count > writer->bytes.size()) writer->bytes.resize(writer->position + count);
    std::memcpy(writer->bytes.data() + writer->position, buffer, count);
    writer->position += count;
    return count;
}

OPJ_OFF_T skipWrite(OPJ_OFF_T count, void *context) {
    MemoryWriter *writer = (MemoryWriter *)context;
    if (count < 0 && (size_t)(-count) > writer->position) return -1;
    writer->position = (size_t)((OPJ_OFF_T)writer->position + count);
    if (writer->position > writer->bytes.size()) writer->bytes.resize(writer->position);
    return count;
}

OPJ_BOOL seekWrite(OPJ_OFF_T offset, void *context) {
    MemoryWriter *writer = (MemoryWriter *)context;
    if (offset < 0) return OPJ_FALSE;
    writer->position = (size_t)offset;
    if (writer->position > writer->bytes.size()) writer->bytes.resize(writer->position);
    return OPJ_TRUE;
}

/// Keeps OpenJPEG's first error message (its default handlers print nothing; ours records).
void recordError(const char *message, void *context) {
    std::string *text = (std::string *)context;
    if (text->empty() && message != nullptr) {
        *text = message;
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    }
}

void ignoreMessage(const char *, void *) {}

struct Owned {
    opj_codec_t *codec = nullptr;
    opj_stream_t *stream = nullptr;
    opj_image_t *image = nullptr;
    ~Owned() {
        if (stream != nullptr) opj_stream_destroy(stream);
        if (codec != nullptr) opj_destroy_codec(codec);
        if (image != nullptr) opj_image_destroy(image);
    }
};

bool isJP2(const uint8_t *data, size_t length) {
    static const uint8_t signature[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    return length >= 12 && std::memcmp(data, signature, 12) == 0;
}

}  // namespace

extern "C" int CCodecs_j2kDecode(
    const uint8_t *codestream, size_t length, uint32_t skipResolutions, CCodecs_Image *image, void *samples,
    size_t capacity, size_t *written, char *error, size_t errorCapacity) {
    if (codestream == nullptr || image == nullptr || written == nullptr)
        return ccodecs::fail(error, errorCapacity, "invalid arguments");
    std::string message;
    Owned owned;
    MemoryReader reader{codestream, length, 0};
    owned.codec = opj_create_decompress(isJP2(codestream, length) ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    if (owned.codec == nullptr) return ccodecs::fail(error, errorCapacity, "cannot create a JPEG 2000 decoder");
    opj_set_error_handler(owned.codec, recordError, &message);
    opj_set_warning_handler(owned.codec, ignoreMessage, nullptr);
    opj_set_info_handler(owned.codec, ignoreMessage, nullptr);
    opj_dparameters_t parameters;
    opj_set_default_decoder_parameters(&parameters);
    parameters.cp_reduce = skipResolutions;
    if (!opj_setup_decoder(owned.codec, &parameters))
        return ccodecs::fail(error, errorCapacity, "JPEG 2000 decoder set-up failed: " + message);
    owned.stream = opj_stream_create(1 << 16, OPJ_TRUE);
    if (owned.stream == nullptr) return ccodecs::fail(error, errorCapacity, "cannot create a JPEG 2000 stream");
    opj_stream_set_user_data(owned.stream, &reader, nullptr);
    opj_stream_set_user_data_length(owned.stream, length);
    opj_stream_set_read_function(owned.stream, readMemory);
    opj_stream_set_skip_function(owned.stream, skipMemory);
    opj_stream_set_seek_function(owned.stream, seekMemory);
    if (!opj_read_header(owned.stream, owned.codec, &owned.image))
        return ccodecs::fail(error, errorCapacity, "JPEG 2000 header unreadable: " + message);
    // OpenJPEG allocates the whole image as 32-bit samples when it decodes: a SIZ marker that declares more than the
    // frame the caller can take (the fuzzer found 251,674,656 × 32 in a 32 × 32 frame: a 32 GB allocation) is
    // refused before it does.
    {
        const opj_image_t *header = owned.image;
        if (header->numcomps == 0 || header->numcomps > 4 || header->x1 <= header->x0 || header->y1 <= header->y0)
            return ccodecs::fail(error, errorCapacity, "unsupported JPEG 2000 image geometry");
        CCodecs_Image declared;
        declared.width = header->x1 - header->x0;
        declared.height = header->y1 - header->y0;
        declared.components = header->numcomps;
        declared.bitsStored = header->comps[0].prec;
        declared.isSigned = header->comps[0].sgnd ? 1 : 0;
        const uint64_t declaredBytes = ccodecs::validImage(declared) ? ccodecs::frameBytes(declared) : 0;
        if (declaredBytes == 0 || declaredBytes > capacity)
            return ccodecs::fail(error, errorCapacity,
                "the codestream declares a " + std::to_string(declared.width) + "×" + std::to_string(declared.height) + "×"
                    + std::to_string(declared.components) + " image, more than the frame holds");
    }
    if (!opj_decode(owned.codec, owned.stream, owned.image) || !opj_end_decompress(owned.codec, owned.stream))
        return ccodecs::fail(error, errorCapacity, "JPEG 2000 decoding failed: " + message);
    opj_image_t *decodedImage = owned.image;
    if (decodedImage->numcomps == 0 || decodedImage->numcomps > 4)
        return ccodecs::fail(error, errorCapacity, "unsupported number of components");
    const opj_image_comp_t &first = decodedImage->comps[0];
    for (uint32_t component = 1; component < decodedImage->numcomps; ++component) {
        const opj_image_comp_t &other = decodedImage->comps[component];
        if (other.w != first.w || other.h != first.h || other.prec != first.prec || other.sgnd != first.sgnd)
            return ccodecs::fail(error, errorCapacity, "components differ in size or depth");
    }
    CCodecs_Image decoded;
    decoded.width = first.w;
    decoded.height = first.h;
    decoded.components = decodedImage->numcomps;
    decoded.bitsStored = first.prec;
    decoded.isSigned = first.sgnd ? 1 : 0;
    if (!ccodecs::validImage(decoded)) return ccodecs::fail(error, errorCapacity, "unsupported geometry or bit depth");
    *image = decoded;
    uint64_t needed = ccodecs::frameBytes(decoded);
    if (samples == nullptr || needed == 0 || needed > capacity)
        return ccodecs::fail(error, errorCapacity, "the decoded frame does not fit the buffer");
    uint8_t *bytes = (uint8_t *)samples;
    const size_t pixels = (size_t)decoded.width * decoded.height;
    for (uint32_t component = 0; component < decoded.components; ++component) {
        const OPJ_INT32 *plane = decodedImage->comps[component].data;
        if (plane == nullptr) return ccodecs::fail(error, errorCapacity, "JPEG 2000 component has no data");
        for (size_t pixel = 0; pixel < pixels; ++pixel)
            ccodecs::storeSample(bytes, pixel * decoded.components + component, decoded, plane[pixel]);
    }
    *written = (size_t)needed;
    return 0;
}

extern "C" int CCodecs_j2kEncodeLossless(
    const CCodecs_Image *image, const void *samples, size_t length, uint32_t decompositions, int colorTransform,
    CCodecs_Output *output, char *error, size_t errorCapacity) {
    if (const char *problem = ccodecs::encodeArgumentProblem(image, samples, length, decompositions, output))
        return ccodecs::fail(error, errorCapacity, problem);
    std::string message;
    Owned owned;
    std::vector<opj_image_cmptparm_t> parameters(image->components);
    for (auto &component : parameters) {
        std::memset(&component, 0, sizeof component);
        component.dx = 1;
        component.dy = 1;
        component.w = image->width;
        component.h = image->height;
        component.prec = image->bitsStored;
        component.sgnd = image->isSigned ? 1 : 0;
    }
    OPJ_COLOR_SPACE space = image->components == 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY;
    owned.image = opj_image_create(image->components, parameters.data(), space);
    if (owned.image == nullptr) return ccodecs::fail(error, errorCapacity, "cannot allocate the JPEG 2000 image");
    owned.image->x0 = 0;
    owned.image->y0 = 0;
    owned.image->x1 = image->width;
    owned.image->y1 = image->height;
    const uint8_t *bytes = (const uint8_t *)samples;
    const size_t pixels = (size_t)image->width * image->height;
    for (uint32_t component = 0; component < image->components; ++component) {
        OPJ_INT32 *plane = owned.image->comps[component].data;
        for (size_t pixel = 0; pixel < pixels; ++pixel)
            plane[pixel] = ccodecs::loadSample(bytes, pixel * image->components + component, *image);
    }
    opj_cparameters_t settings;
    opj_set_default_encoder_parameters(&settings);
    settings.tcp_numlayers = 1;
    settings.tcp_rates[0] = 0;
    settings.cp_disto_alloc = 1;
    settings.irreversible = 0;
    settings.numresolution = (int)decompositions + 1;
    settings.tcp_mct = (colorTransform != 0 && image->components == 3) ? 1 : 0;
    owned.codec = opj_create_compress(OPJ_CODEC_J2K);
    if (owned.codec == nullptr) return ccodecs::fail(error, errorCapacity, "cannot create a JPEG 2000 encoder");
    opj_set_error_handler(owned.codec, recordError, &message);
    opj_set_warning_handler(owned.codec, ignoreMessage, nullptr);
    opj_set_info_handler(owned.codec, ignoreMessage, nullptr);
    if (!opj_setup_encoder(owned.codec, &settings, owned.image))
        return ccodecs::fail(error, errorCapacity, "JPEG 2000 encoder set-up failed: " + message);
    MemoryWriter writer;
    owned.stream = opj_stream_create(1 << 16, OPJ_FALSE);
    if (owned.stream == nullptr) return ccodecs::fail(error, errorCapacity, "cannot create a JPEG 2000 stream");
    opj_stream_set_user_data(owned.stream, &writer, nullptr);
    opj_stream_set_write_function(owned.stream, writeMemory);
    opj_stream_set_skip_function(owned.stream, skipWrite);
    opj_stream_set_seek_function(owned.stream, seekWrite);
    if (!opj_start_compress(owned.codec, owned.image, owned.stream) || !opj_encode(owned.codec, owned.stream)
        || !opj_end_compress(owned.codec, owned.stream))
        return ccodecs::fail(error, errorCapacity, "JPEG 2000 encoding failed: " + message);
    output->data = (uint8_t *)std::malloc(writer.bytes.size());
    if (output->data == nullptr) return ccodecs::fail(error, errorCapacity, "out of memory for the encoded frame");
    std::memcpy(output->data, writer.bytes.data(), writer.bytes.size());
    output->length = writer.bytes.size();
    return 0;
}
