#include "Common.hpp"

#include <openjph/ojph_arch.h>
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_message.h>
#include <openjph/ojph_params.h>

#include <cstdarg>
#include <cstdlib>

namespace {

/// OpenJPH reports errors through a process-wide handler that prints to stderr and throws; ours only throws, with
/// the formatted message, so the shim can hand it to Swift.
class ThrowingError : public ojph::message_error {
public:
    void operator()(int code, const char *, int, const char *format, ...) override {
        char text[512];
        va_list arguments;
        va_start(arguments, format);
        std::vsnprintf(text, sizeof text, format, arguments);
        va_end(arguments);
        throw std::runtime_error("OpenJPH error " + std::to_string(code) + ": " + text);
    }
};

class SilentWarning : public ojph::message_warning {
public:
    void operator()(int, const char *, int, const char *, ...) override {}
};

class SilentInfo : public ojph::message_info {
public:
    void operator()(int, const char *, int, const char *, ...) override {}
};

ThrowingError throwingError;
SilentWarning silentWarning;
SilentInfo silentInfo;

/// A read-only memory file that remembers where reading was when the parser first jumped forward past everything
/// it had read: asked for fewer resolutions, OpenJPH parses the packets of those and then seeks to the end of the
/// tile-part, so that position is where the last wanted resolution ends.
class TrackingInput : public ojph::infile_base {
public:
    TrackingInput(const uint8_t *data, size_t size) : data(data), size(size) {}

    size_t read(void *pointer, size_t count) override {
        size_t available = size - position;
        size_t taken = count < available ? count : available;
        std::memcpy(pointer, data + position, taken);
        position += taken;
        if (position > furthest) furthest = position;
        return taken;
    }

    int seek(ojph::si64 offset, enum infile_base::seek origin) override {
        ojph::si64 base = origin == OJPH_SEEK_SET ? 0 : origin == OJPH_SEEK_CUR ? (ojph::si64)position : (ojph::si64)size;
        ojph::si64 target = base + offset;
        if (target < 0 || target > (ojph::si64)size) return -1;
        if (watching && !jumped && (size_t)target > furthest) {
            jumped = true;
            jumpedFrom = furthest;
        }
        position = (size_t)target;
        return 0;
    }

    /// Starts looking for the first forward jump (after the main header is read).
    void watch() {
        watching = true;
        jumped = false;
    }

    ojph::si64 tell() override { return (ojph::si64)position; }
    bool eof() override { return position >= size; }

    size_t furthest = 0;
    bool jumped = false;
    size_t jumpedFrom = 0;

private:
    bool watching = false;
    const uint8_t *data;
    size_t size;
    size_t position = 0;
};

/// A growable memory output whose buffer is handed to the caller (OpenJPH's `mem_outfile` keeps its own).
class BufferOutput : public ojph::outfile_base {
public:
    ~BufferOutput() override { std::free(data); }

    size_t write(const void *pointer, size_t count) override {
        if (length + count > capacity) {
            size_t next = capacity == 0 ? 1 << 16 : capacity;
            while (next < length + count) next *= 2;
            uint8_t *grown = (uint8_t *)std::realloc(data, next);
            if (grown == nullptr) throw std::runtime_error("out of memory for the encoded frame");
            data = grown;
            capacity = next;
        }
        std::memcpy(data + length, pointer, count);
        length += count;
        return count;
    }

    ojph::si64 tell() override { return (ojph::si64)length; }

    /// Moves the bytes to `output`.
    void release(CCodecs_Output *output) {
        output->data = data;
        output->length = length;
        data = nullptr;
        length = capacity = 0;
    }

private:
    uint8_t *data = nullptr;
    size_t length = 0;
    size_t capacity = 0;
};

/// Refuses SIZ values ISO/IEC 15444-1 §A.5.1 forbids: OpenJPH 0.9 does not check them, loops for ever in
/// `codestream::pull` on a tile origin below the image origin and divides by a zero sampling factor (both found
/// by the `instance` fuzz target).
void checkTiling(const ojph::param_siz &siz) {
    const ojph::point extent = siz.get_image_extent(), offset = siz.get_image_offset(), tileOffset = siz.get_tile_offset();
    const ojph::size tile = siz.get_tile_size();
    const bool valid = offset.x < extent.x && offset.y < extent.y && tileOffset.x <= offset.x && tileOffset.y <= offset.y
        && tile.w > 0 && tile.h > 0 && (uint64_t)tileOffset.x + tile.w > offset.x && (uint64_t)tileOffset.y + tile.h > offset.y;
    if (!valid) throw std::runtime_error("the SIZ marker's image and tile origins are not valid (ISO/IEC 15444-1 A.5.1)");
    // OpenJPH divides by the sampling factors (XRsiz, YRsiz): 0 is a division by zero (found by the fuzzer).
    for (uint32_t component = 0; component < siz.get_num_components(); ++component) {
        const ojph::point down = siz.get_downsampling(component);
        if (down.x < 1 || down.x > 255 || down.y < 1 || down.y > 255)
            throw std::runtime_error("the SIZ marker's sampling factors are not valid (ISO/IEC 15444-1 A.5.1)");
    }
}

}  // namespace

extern "C" void CCodecs_bootstrap(void) {
    // Some of OpenJPH 0.9's code-block errors go to the default handler's stream before ours throws: silence it.
    static FILE *discard = std::fopen("/dev/null", "w");
    if (discard != nullptr) {
        ojph::set_error_stream(discard);
        ojph::set_warning_stream(discard);
        ojph::set_info_stream(discard);
    }
    ojph::configure_error(&throwingError);
    ojph::configure_warning(&silentWarning);
    ojph::configure_info(&silentInfo);
}

extern "C" int CCodecs_htj2kEncode(
    const CCodecs_Image *image, const void *samples, size_t length, uint32_t decompositions, int colorTransform,
    CCodecs_Output *output, char *error, size_t errorCapacity) {
    if (const char *problem = ccodecs::encodeArgumentProblem(image, samples, length, decompositions, output))
        return ccodecs::fail(error, errorCapacity, problem);
    try {
        ojph::codestream codestream;
        ojph::param_siz siz = codestream.access_siz();
        siz.set_image_extent(ojph::point(image->width, image->height));
        siz.set_num_components(image->components);
        for (uint32_t component = 0; component < image->components; ++component)
            siz.set_component(component, ojph::point(1, 1), image->bitsStored, image->isSigned != 0);
        siz.set_image_offset(ojph::point(0, 0));
        siz.set_tile_size(ojph::size(image->width, image->height));
        siz.set_tile_offset(ojph::point(0, 0));
        ojph::param_cod cod = codestream.access_cod();
        cod.set_num_decomposition(decompositions);
        cod.set_block_dims(64, 64);
        cod.set_progression_order("RPCL");
        cod.set_color_transform(colorTransform != 0 && image->components == 3);
        cod.set_reversible(true);
        codestream.set_planar(false);

        BufferOutput file;
        codestream.write_headers(&file);
        const uint8_t *bytes = (const uint8_t *)samples;
        const size_t rowSamples = (size_t)image->width * image->components;
        ojph::ui32 next = 0;
        ojph::line_buf *line = codestream.exchange(nullptr, next);
        for (uint32_t y = 0; y < image->height; ++y) {
            for (uint32_t component = 0; component < image->components; ++component) {
                if (next != component) throw std::runtime_error("OpenJPH asked for components out of order");
                ojph::si32 *target = line->i32;
                size_t index = (size_t)y * rowSamples + component;
                for (uint32_t x = 0; x < image->width; ++x, index += image->components)
                    target[x] = ccodecs::loadSample(bytes, index, *image);
                line = codestream.exchange(line, next);
            }
        }
        codestream.flush();
        codestream.close();
        file.release(output);
        return 0;
    } catch (const std::exception &exception) {
        return ccodecs::fail(error, errorCapacity, exception.what());
    } catch (...) {
        return ccodecs::fail(error, errorCapacity, "HTJ2K encoding failed");
    }
}

extern "C" int CCodecs_htj2kResolutionEnds(
    const uint8_t *codestream, size_t length, uint64_t *ends, size_t capacity, size_t *count, char *error,
    size_t errorCapacity) {
    if (codestream == nullptr || ends == nullptr || count == nullptr)
        return ccodecs::fail(error, errorCapacity, "invalid arguments");
    try {
        uint32_t decompositions = 0;
        {
            TrackingInput input(codestream, length);
            ojph::codestream reader;
            reader.read_headers(&input);
            decompositions = reader.access_cod().get_num_decompositions();
            reader.close();
        }
        if ((size_t)decompositions + 1 > capacity) return ccodecs::fail(error, errorCapacity, "too many resolutions");
        // The last resolution ends where the tile data does: before EOC, which closes the codestream.
        if (length < 4 || codestream[length - 2] != 0xFF || codestream[length - 1] != 0xD9)
            return ccodecs::fail(error, errorCapacity, "the codestream does not end with EOC");
        ends[decompositions] = length - 2;
        for (uint32_t skipped = decompositions; skipped > 0; --skipped) {
            TrackingInput input(codestream, length);
            ojph::codestream reader;
            reader.read_headers(&input);
            reader.restrict_input_resolution(skipped, skipped);
            input.watch();
            reader.create();
            if (!input.jumped)
                return ccodecs::fail(error, errorCapacity, "OpenJPH read past the resolutions it was asked for");
            ends[decompositions - skipped] = input.jumpedFrom;
            reader.close();
        }
        *count = (size_t)decompositions + 1;
        return 0;
    } catch (const std::exception &exception) {
        return ccodecs::fail(error, errorCapacity, exception.what());
    } catch (...) {
        return ccodecs::fail(error, errorCapacity, "HTJ2K parsing failed");
    }
}

extern "C" int CCodecs_htj2kDecode(
    const uint8_t *codestream, size_t length, uint32_t skipResolutions, CCodecs_Image *image, void *samples,
    size_t capacity, size_t *written, char *error, size_t errorCapacity) {
    if (codestream == nullptr || image == nullptr || written == nullptr)
        return ccodecs::fail(error, errorCapacity, "invalid arguments");
    try {
        TrackingInput input(codestream, length);
        ojph::codestream reader;
        reader.read_headers(&input);
        ojph::param_siz siz = reader.access_siz();
        checkTiling(siz);
        uint32_t components = siz.get_num_components();
        if (components == 0 || components > 4) throw std::runtime_error("unsupported number of components");
        for (uint32_t component = 1; component < components; ++component) {
            ojph::point down = siz.get_downsampling(component);
            if (down.x != 1 || down.y != 1 || siz.get_bit_depth(component) != siz.get_bit_depth(0)
                || siz.is_signed(component) != siz.is_signed(0))
                throw std::runtime_error("components differ in sampling or depth");
        }
        if (skipResolutions > reader.access_cod().get_num_decompositions())
            throw std::runtime_error("more resolutions skipped than the codestream has");
        reader.restrict_input_resolution(skipResolutions, skipResolutions);
        reader.set_planar(false);
        CCodecs_Image decoded;
        decoded.width = siz.get_recon_width(0);
        decoded.height = siz.get_recon_height(0);
        decoded.components = components;
        decoded.bitsStored = siz.get_bit_depth(0);
        decoded.isSigned = siz.is_signed(0) ? 1 : 0;
        if (!ccodecs::validImage(decoded)) throw std::runtime_error("unsupported image geometry or bit depth");
        uint64_t needed = ccodecs::frameBytes(decoded);
        *image = decoded;
        if (samples == nullptr || needed == 0 || needed > capacity)
            throw std::runtime_error("the decoded frame does not fit the buffer");
        reader.create();
        uint8_t *bytes = (uint8_t *)samples;
        const size_t rowSamples = (size_t)decoded.width * components;
        for (uint32_t y = 0; y < decoded.height; ++y) {
            for (uint32_t component = 0; component < components; ++component) {
                ojph::ui32 pulled = 0;
                ojph::line_buf *line = reader.pull(pulled);
                if (line == nullptr || pulled != component) throw std::runtime_error("OpenJPH returned lines out of order");
                const ojph::si32 *source = line->i32;
                size_t index = (size_t)y * rowSamples + component;
                for (uint32_t x = 0; x < decoded.width; ++x, index += components)
                    ccodecs::storeSample(bytes, index, decoded, source[x]);
            }
        }
        reader.close();
        *written = (size_t)needed;
        return 0;
    } catch (const std::exception &exception) {
        return ccodecs::fail(error, errorCapacity, exception.what());
    } catch (...) {
        return ccodecs::fail(error, errorCapacity, "HTJ2K decoding failed");
    }
}
