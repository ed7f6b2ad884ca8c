// With JPEGDecoder.cpp, the only code that sees DCMTK. Every entry point catches everything: no C++ exception
// crosses into Swift.
#include "CDCMTKShim.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cstring>
#include <string>

struct CDCMTKShim_File {
    DcmFileFormat format;
};

namespace {

thread_local std::string lastText;

CDCMTKShim_Status ok() { return CDCMTKShim_Status{0, 0, ""}; }

CDCMTKShim_Status fromCondition(const OFCondition &condition) {
    if (condition.good()) return ok();
    lastText = condition.text();
    return CDCMTKShim_Status{condition.module(), condition.code(), lastText.c_str()};
}

/// Shim-defined failures use module 0xFFFF so they never collide with a DCMTK module number.
CDCMTKShim_Status failure(uint16_t code, const char *text) {
    lastText = text;
    return CDCMTKShim_Status{0xFFFF, code, lastText.c_str()};
}

CDCMTKShim_Status caught() { return failure(0xFFFF, "unexpected C++ exception inside DCMTK"); }

DcmPixelSequence *pixelSequence(CDCMTKShim_File *file, DcmPixelData **pixelData = nullptr) {
    DcmDataset *dataset = file->format.getDataset();
    DcmElement *element = nullptr;
    if (dataset->findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) return nullptr;
    auto *pixel = OFstatic_cast(DcmPixelData *, element);
    if (pixelData) *pixelData = pixel;
    DcmPixelSequence *sequence = nullptr;
    E_TransferSyntax xfer = dataset->getOriginalXfer();
    if (pixel->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad()) return nullptr;
    return sequence;
}

struct Walker {
    CDCMTKShim_Visitor visitor;
    void *context;
    bool stopped = false;

    bool emit(CDCMTKShim_EventKind kind, const DcmTag &tag, uint32_t length, uint32_t depth) {
        CDCMTKShim_Event event;
        event.kind = kind;
        event.group = tag.getGTag();
        event.element = tag.getETag();
        const char *vrName = DcmVR(tag.getEVR()).getValidVRName();
        event.vr[0] = vrName && vrName[0] ? vrName[0] : '?';
        event.vr[1] = vrName && vrName[0] ? vrName[1] : '?';
        event.length = length;
        event.depth = depth;
        if (visitor(&event, context) != 0) stopped = true;
        return !stopped;
    }

    void walkItem(DcmItem *item, uint32_t depth) {
        for (unsigned long index = 0; index < item->card() && !stopped; ++index) {
            DcmElement *element = item->getElement(index);
            walkElement(element, depth);
        }
    }

    void walkElement(DcmElement *element, uint32_t depth) {
        const DcmTag &tag = element->getTag();
        DcmEVR evr = element->ident();
        if (evr == EVR_SQ) {
            auto *sequence = OFstatic_cast(DcmSequenceOfItems *, element);
            if (!emit(CDCMTKShim_SequenceStart, tag, element->getLengthField(), depth)) return;
            for (unsigned long index = 0; index < sequence->card() && !stopped; ++index) {
                DcmItem *item = sequence->getItem(index);
                if (!emit(CDCMTKShim_ItemStart, item->getTag(), item->getLengthField(), depth + 1)) return;
                walkItem(item, depth + 1);
                if (!stopped) emit(CDCMTKShim_ItemEnd, item->getTag(), 0, depth + 1);
            }
            if (!stopped) emit(CDCMTKShim_SequenceEnd, tag, 0, depth);
            return;
        }
        if (evr == EVR_PixelData) {
            auto *pixel = OFstatic_cast(DcmPixelData *, element);
            DcmPixelSequence *sequence = nullptr;
            E_TransferSyntax xfer = EXS_Unknown;
            const DcmRepresentationParameter *parameter = nullptr;
            pixel->getOriginalRepresentationKey(xfer, parameter);
            if (DcmXfer(xfer).isEncapsulated() && pixel->getEncapsulatedRepresentation(xfer, parameter, sequence).good()
                && sequence != nullptr) {
                if (!emit(CDCMTKShim_PixelSequenceStart, tag, 0xFFFFFFFF, depth)) return;
                for (unsigned long index = 0; index < sequence->card() && !stopped; ++index) {
                    DcmPixelItem *item = nullptr;
                    if (sequence->getItem(item, index).good() && item != nullptr) {
                        emit(CDCMTKShim_Fragment, item->getTag(), item->getLength(), depth + 1);
                    }
                }
                if (!stopped) emit(CDCMTKShim_PixelSequenceEnd, tag, 0, depth);
                return;
            }
        }
        emit(CDCMTKShim_Element, tag, element->getLengthField(), depth);
    }
};

}  // namespace

extern "C" {

CDCMTKShim_Status CDCMTKShim_bootstrap(void) {
    try {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        if (!dcmDataDict.isDictionaryLoaded()) {
            return failure(1, "DCMTK data dictionary not loaded (check DCMDICTPATH or the libdcmtk dictionary)");
        }
        // Deliberate process-wide tolerance: accept odd lengths (DCMTK's default) and keep strict parsing
        // otherwise, so DCMTK stays a useful second opinion.
        dcmAcceptOddAttributeLength.set(OFTrue);
        dcmIgnoreParsingErrors.set(OFFalse);
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_open(const char *path, uint32_t maxReadLength, CDCMTKShim_File **file) {
    *file = nullptr;
    try {
        auto *handle = new CDCMTKShim_File();
        OFCondition condition =
            handle->format.loadFile(path, EXS_Unknown, EGL_noChange, maxReadLength, ERM_autoDetect);
        if (condition.bad()) {
            delete handle;
            return fromCondition(condition);
        }
        *file = handle;
        return ok();
    } catch (...) {
        return caught();
    }
}

void CDCMTKShim_close(CDCMTKShim_File *file) {
    try {
        delete file;
    } catch (...) {
    }
}

CDCMTKShim_Status CDCMTKShim_transferSyntax(CDCMTKShim_File *file, char *buffer, size_t capacity, size_t *length) {
    try {
        DcmXfer xfer(file->format.getDataset()->getOriginalXfer());
        const char *uid = xfer.getXferID();
        size_t count = std::strlen(uid);
        *length = count;
        if (capacity > 0) {
            size_t copied = count < capacity - 1 ? count : capacity - 1;
            std::memcpy(buffer, uid, copied);
            buffer[copied] = 0;
        }
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_getString(
    CDCMTKShim_File *file, uint16_t group, uint16_t element, char *buffer, size_t capacity, size_t *length) {
    try {
        DcmTagKey key(group, element);
        DcmItem *item = group == 0x0002 ? OFstatic_cast(DcmItem *, file->format.getMetaInfo())
                                        : OFstatic_cast(DcmItem *, file->format.getDataset());
        DcmElement *found = nullptr;
        OFCondition condition = item->findAndGetElement(key, found);
        if (condition.bad() || found == nullptr) return fromCondition(condition.bad() ? condition : EC_TagNotFound);
        char *value = nullptr;
        Uint32 count = found->getLength();
        condition = found->getString(value);
        if (condition.bad()) return fromCondition(condition);
        *length = count;
        size_t copied = count < capacity ? count : capacity;
        if (value != nullptr && copied > 0) std::memcpy(buffer, value, copied);
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_getUnsigned(CDCMTKShim_File *file, uint16_t group, uint16_t element, uint64_t *value) {
    try {
        DcmDataset *dataset = file->format.getDataset();
        DcmElement *found = nullptr;
        OFCondition condition = dataset->findAndGetElement(DcmTagKey(group, element), found);
        if (condition.bad() || found == nullptr) return fromCondition(condition.bad() ? condition : EC_TagNotFound);
        switch (found->ident()) {
            case EVR_US: {
                Uint16 v = 0;
                condition = found->getUint16(v);
                *value = v;
                break;
            }
            case EVR_UL: {
                Uint32 v = 0;
                condition = found->getUint32(v);
                *value = v;
                break;
            }
            default: {
                OFString text;
                condition = found->getOFString(text, 0);
                if (condition.good()) *value = std::strtoull(text.c_str(), nullptr, 10);
            }
        }
        return fromCondition(condition);
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_visitElements(CDCMTKShim_File *file, CDCMTKShim_Visitor visitor, void *context) {
    try {
        Walker walker{visitor, context};
        walker.walkItem(file->format.getMetaInfo(), 0);
        if (!walker.stopped) walker.walkItem(file->format.getDataset(), 0);
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_pixelDataInfo(
    CDCMTKShim_File *file, uint32_t *numberOfFrames, int *isEncapsulated, uint32_t *itemCount) {
    try {
        DcmDataset *dataset = file->format.getDataset();
        Sint32 frames = 1;
        if (dataset->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
        *numberOfFrames = OFstatic_cast(uint32_t, frames);
        DcmPixelSequence *sequence = pixelSequence(file);
        *isEncapsulated = sequence != nullptr ? 1 : 0;
        *itemCount = sequence != nullptr ? OFstatic_cast(uint32_t, sequence->card()) : 0;
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_fragmentLength(CDCMTKShim_File *file, uint32_t index, uint32_t *length) {
    try {
        DcmPixelSequence *sequence = pixelSequence(file);
        if (sequence == nullptr) return failure(2, "pixel data is not encapsulated");
        DcmPixelItem *item = nullptr;
        OFCondition condition = sequence->getItem(item, index);
        if (condition.bad() || item == nullptr) return fromCondition(condition.bad() ? condition : EC_IllegalCall);
        *length = item->getLength();
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_frameStartItem(CDCMTKShim_File *file, uint32_t frame, uint32_t *itemIndex) {
    try {
        DcmDataset *dataset = file->format.getDataset();
        DcmPixelSequence *sequence = pixelSequence(file);
        if (sequence == nullptr) return failure(2, "pixel data is not encapsulated");
        Sint32 frames = 1;
        if (dataset->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
        Uint32 item = 0;
        OFCondition condition = DcmCodec::determineStartFragment(frame, frames, sequence, item);
        if (condition.bad()) return fromCondition(condition);
        *itemIndex = item;
        return ok();
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_decodedFrameSize(CDCMTKShim_File *file, uint32_t *size) {
    try {
        DcmPixelData *pixel = nullptr;
        DcmDataset *dataset = file->format.getDataset();
        DcmElement *element = nullptr;
        OFCondition condition = dataset->findAndGetElement(DCM_PixelData, element);
        if (condition.bad() || element == nullptr) return fromCondition(condition.bad() ? condition : EC_TagNotFound);
        pixel = OFstatic_cast(DcmPixelData *, element);
        Uint32 frameSize = 0;
        condition = pixel->getUncompressedFrameSize(dataset, frameSize);
        *size = frameSize;
        return fromCondition(condition);
    } catch (...) {
        return caught();
    }
}

CDCMTKShim_Status CDCMTKShim_decodeFrame(
    CDCMTKShim_File *file, uint32_t frame, void *buffer, size_t capacity, size_t *written) {
    try {
        DcmDataset *dataset = file->format.getDataset();
        DcmElement *element = nullptr;
        OFCondition condition = dataset->findAndGetElement(DCM_PixelData, element);
        if (condition.bad() || element == nullptr) return fromCondition(condition.bad() ? condition : EC_TagNotFound);
        auto *pixel = OFstatic_cast(DcmPixelData *, element);
        Uint32 frameSize = 0;
        condition = pixel->getUncompressedFrameSize(dataset, frameSize);
        if (condition.bad()) return fromCondition(condition);
        if (frameSize > capacity) return failure(3, "buffer too small for the decoded frame");
        Uint32 startFragment = 0;
        OFString colorModel;
        condition = pixel->getUncompressedFrame(
            dataset, frame, startFragment, buffer, frameSize, colorModel, nullptr);
        if (condition.bad()) return fromCondition(condition);
        *written = frameSize;
        return ok();
    } catch (...) {
        return caught();
    }
}

}  // extern "C"
