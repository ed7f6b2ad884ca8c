import CDCMTKShim
import DICOMCore

/// Every call into the C shim goes through this file, so status handling, tracing and mocking have one place.
enum DCMTKCalls {
    static func check(_ status: CDCMTKShim_Status) throws(DCMTKError) {
        guard status.code == 0 && status.module == 0 else {
            let text = status.text.map { String(cString: $0) } ?? "unknown DCMTK error"
            throw DCMTKError(module: status.module, code: status.code, text: text)
        }
    }

    static func bootstrap() throws(DCMTKError) {
        try check(CDCMTKShim_bootstrap())
    }

    static func open(path: String, maxReadLength: UInt32) throws(DCMTKError) -> OpaquePointer {
        var handle: OpaquePointer?
        try check(CDCMTKShim_open(path, maxReadLength, &handle))
        guard let handle else { throw DCMTKError(module: DCMTKError.shimModule, code: 0, text: "no handle") }
        return handle
    }

    static func close(_ handle: OpaquePointer) {
        CDCMTKShim_close(handle)
    }

    static func transferSyntax(_ handle: OpaquePointer) throws(DCMTKError) -> String {
        var buffer = [CChar](repeating: 0, count: 128)
        var length = 0
        try check(CDCMTKShim_transferSyntax(handle, &buffer, buffer.count, &length))
        return String(decoding: buffer.prefix(min(length, buffer.count - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func rawString(_ handle: OpaquePointer, group: UInt16, element: UInt16) throws(DCMTKError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 1024)
        var length = 0
        try check(CDCMTKShim_getString(handle, group, element, &buffer, buffer.count, &length))
        if length > buffer.count {
            buffer = [CChar](repeating: 0, count: length)
            try check(CDCMTKShim_getString(handle, group, element, &buffer, buffer.count, &length))
        }
        return buffer.prefix(length).map { UInt8(bitPattern: $0) }
    }

    static func unsigned(_ handle: OpaquePointer, group: UInt16, element: UInt16) throws(DCMTKError) -> UInt64 {
        var value: UInt64 = 0
        try check(CDCMTKShim_getUnsigned(handle, group, element, &value))
        return value
    }

    static func visit(_ handle: OpaquePointer, _ body: (DCMTKFile.Node) -> Bool) throws(DCMTKError) {
        let onEvent: (CDCMTKShim_Event) -> Bool = { body(node(from: $0)) }
        try withoutActuallyEscaping(onEvent) { escapable throws(DCMTKError) in
            var box = VisitorBox(body: escapable)
            let status = withUnsafeMutablePointer(to: &box) { pointer in
                CDCMTKShim_visitElements(
                    handle,
                    { event, context in
                        guard let event, let context else { return 1 }
                        let box = context.assumingMemoryBound(to: VisitorBox.self)
                        return box.pointee.body(event.pointee) ? 0 : 1
                    }, pointer)
            }
            try check(status)
        }
    }

    private static func node(from event: CDCMTKShim_Event) -> DCMTKFile.Node {
        let kind: DCMTKFile.Node.Kind
        switch event.kind {
        case CDCMTKShim_SequenceStart: kind = .sequenceStart
        case CDCMTKShim_ItemStart: kind = .itemStart
        case CDCMTKShim_ItemEnd: kind = .itemEnd
        case CDCMTKShim_SequenceEnd: kind = .sequenceEnd
        case CDCMTKShim_PixelSequenceStart: kind = .pixelSequenceStart
        case CDCMTKShim_Fragment: kind = .fragment
        case CDCMTKShim_PixelSequenceEnd: kind = .pixelSequenceEnd
        default: kind = .element
        }
        let vr = String(decoding: [UInt8(bitPattern: event.vr.0), UInt8(bitPattern: event.vr.1)], as: UTF8.self)
        return DCMTKFile.Node(
            kind: kind, tag: DICOMTag(group: event.group, element: event.element), vr: vr, length: event.length,
            depth: Int(event.depth))
    }

    private struct VisitorBox {
        var body: (CDCMTKShim_Event) -> Bool
    }

    static func pixelDataInfo(_ handle: OpaquePointer) throws(DCMTKError) -> (frames: Int, encapsulated: Bool, items: Int) {
        var frames: UInt32 = 0
        var encapsulated: Int32 = 0
        var items: UInt32 = 0
        try check(CDCMTKShim_pixelDataInfo(handle, &frames, &encapsulated, &items))
        return (Int(frames), encapsulated != 0, Int(items))
    }

    static func fragmentLength(_ handle: OpaquePointer, index: Int) throws(DCMTKError) -> Int {
        var length: UInt32 = 0
        try check(CDCMTKShim_fragmentLength(handle, UInt32(index), &length))
        return Int(length)
    }

    static func frameStartItem(_ handle: OpaquePointer, frame: Int) throws(DCMTKError) -> Int {
        var item: UInt32 = 0
        try check(CDCMTKShim_frameStartItem(handle, UInt32(frame), &item))
        return Int(item)
    }

    static func decodeFrame(_ handle: OpaquePointer, frame: Int) throws(DCMTKError) -> [UInt8] {
        var size: UInt32 = 0
        try check(CDCMTKShim_decodedFrameSize(handle, &size))
        var output = [UInt8](repeating: 0, count: Int(size))
        var written = 0
        let status = output.withUnsafeMutableBytes { buffer in
            CDCMTKShim_decodeFrame(handle, UInt32(frame), buffer.baseAddress, buffer.count, &written)
        }
        try check(status)
        return Array(output.prefix(written))
    }

    static func decodeJPEG(
        _ stream: UnsafeRawBufferPointer, convertYBR: Bool, into buffer: UnsafeMutableRawBufferPointer
    ) throws(DCMTKError) -> (frame: DCMTK.JPEGFrame, written: Int) {
        var frame = CDCMTKShim_JPEGFrame()
        var written = 0
        try check(
            CDCMTKShim_decodeJPEG(
                stream.baseAddress?.assumingMemoryBound(to: UInt8.self), stream.count, convertYBR ? 1 : 0, &frame,
                buffer.baseAddress, buffer.count, &written))
        return (
            DCMTK.JPEGFrame(
                width: Int(frame.width), height: Int(frame.height), components: Int(frame.components),
                precision: Int(frame.precision)), written
        )
    }
}
