/// The marker structure of a one-tile JPEG 2000 / HTJ2K codestream (ITU-T T.800 Annex A, T.814), enough to add
/// what DICOM's HTJ2K Lossless RPCL syntax (.202) asks for and OpenJPH 0.9 does not write: tile-parts split at
/// resolution boundaries and a TLM marker that indexes them, so a reader can fetch a lower resolution by byte
/// range alone.
public struct HTJ2KCodestream: Sendable {
    /// Marker codes (T.800 Table A.2).
    enum Marker {
        static let soc: UInt16 = 0xFF4F
        static let siz: UInt16 = 0xFF51
        static let cod: UInt16 = 0xFF52
        static let cap: UInt16 = 0xFF50
        static let tlm: UInt16 = 0xFF55
        static let sot: UInt16 = 0xFF90
        static let sod: UInt16 = 0xFF93
        static let eoc: UInt16 = 0xFFD9
    }

    public struct TilePart: Hashable, Sendable {
        /// From its SOT marker to its last data byte.
        public var range: Range<Int>
        /// Where its data starts (after SOD).
        public var dataStart: Int
        public var index: Int
        public var count: Int
    }

    public var width: Int
    public var height: Int
    public var components: Int
    /// Main-header marker segments after SIZ, each as (code, byte range including the marker).
    public var mainSegments: [(code: UInt16, range: Range<Int>)]
    public var sizRange: Range<Int>
    public var tileParts: [TilePart]
    public var decompositions: Int
    /// Progression order of COD (T.800 Table A.16): 2 is RPCL.
    public var progressionOrder: Int
    /// COD's transformation: 1 is the reversible 5/3 wavelet.
    public var transformation: Int
    /// COD's code-block style has the HT bit (T.814 Table A.4, bit 6).
    public var usesHTBlockCoder: Bool
    /// Ptlm values of the TLM markers, in order.
    public var tlmLengths: [Int]

    /// Reads the main header and the tile-part headers; every length is checked against the buffer.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(PixelError) {
        func u16(_ offset: Int) throws(PixelError) -> Int {
            guard offset >= 0, offset + 2 <= bytes.count else { throw PixelError(.decode, "codestream ends at \(offset)") }
            return Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
        }
        func u8(_ offset: Int) throws(PixelError) -> Int {
            guard offset >= 0, offset < bytes.count else { throw PixelError(.decode, "codestream ends at \(offset)") }
            return Int(bytes[offset])
        }
        func u32(_ offset: Int) throws(PixelError) -> Int {
            try u16(offset) << 16 | u16(offset + 2)
        }
        guard try u16(0) == Int(Marker.soc), try u16(2) == Int(Marker.siz) else {
            throw PixelError(.decode, "not a JPEG 2000 codestream (no SOC then SIZ)")
        }
        var offset = 2
        var segments: [(UInt16, Range<Int>)] = []
        var siz: Range<Int>?
        var cod: Int?
        var tlm: [Int] = []
        // Main header: marker segments up to the first SOT.
        while true {
            let code = try u16(offset)
            if code == Int(Marker.sot) { break }
            guard code >= 0xFF30 else { throw PixelError(.decode, "no marker at offset \(offset)") }
            let length = try u16(offset + 2)
            let end = offset + 2 + length
            guard length >= 2, end <= bytes.count else { throw PixelError(.decode, "marker at \(offset) runs past the end") }
            if code == Int(Marker.siz) {
                siz = offset..<end
            } else {
                segments.append((UInt16(code), offset..<end))
            }
            if code == Int(Marker.cod) { cod = offset }
            if code == Int(Marker.tlm) {
                guard length >= 4 else { throw PixelError(.decode, "TLM at \(offset) too short") }
                // Ztlm, Stlm, then pairs; ST (bits 4–5) sizes Ttlm, SP (bit 6) sizes Ptlm.
                let stlm = Int(bytes[offset + 5])
                let tSize = (stlm >> 4) & 3
                let pSize = stlm & 0x40 != 0 ? 4 : 2
                var entry = offset + 6 + tSize
                while entry + pSize <= end {
                    tlm.append(pSize == 4 ? try u32(entry) : try u16(entry))
                    entry += tSize + pSize
                }
            }
            offset = end
        }
        guard let siz, siz.count >= 41, let cod, try u16(cod + 2) >= 12 else {
            throw PixelError(.decode, "codestream without SIZ or COD")
        }
        width = try u32(siz.lowerBound + 6) - u32(siz.lowerBound + 14)
        height = try u32(siz.lowerBound + 10) - u32(siz.lowerBound + 18)
        components = try u16(siz.lowerBound + 38)
        progressionOrder = Int(bytes[cod + 5])
        decompositions = Int(bytes[cod + 9])
        usesHTBlockCoder = bytes[cod + 12] & 0x40 != 0
        transformation = Int(bytes[cod + 13])
        sizRange = siz
        mainSegments = segments
        tlmLengths = tlm
        // Tile-parts: SOT, tile-part header, SOD, data; Psot 0 means "up to EOC".
        var parts: [TilePart] = []
        while try u16(offset) == Int(Marker.sot) {
            guard try u16(offset + 2) == 10 else { throw PixelError(.decode, "SOT at \(offset) with a bad length") }
            let psot = try u32(offset + 6)
            let index = try u8(offset + 10)
            let count = try u8(offset + 11)
            var end = psot == 0 ? bytes.count - 2 : offset + psot
            guard end <= bytes.count, end > offset + 12 else { throw PixelError(.decode, "tile-part at \(offset) runs past the end") }
            var marker = offset + 12
            while try u16(marker) != Int(Marker.sod) {
                let length = try u16(marker + 2)
                guard length >= 2 else { throw PixelError(.decode, "bad marker in the tile-part header at \(marker)") }
                marker += 2 + length
                guard marker < end else { throw PixelError(.decode, "tile-part at \(offset) has no SOD") }
            }
            if psot == 0 { end = max(marker + 2, end) }
            parts.append(TilePart(range: offset..<end, dataStart: marker + 2, index: index, count: count))
            offset = end
        }
        guard try u16(offset) == Int(Marker.eoc) else { throw PixelError(.decode, "no EOC after the tile-parts at \(offset)") }
        tileParts = parts
    }

    /// Why `bytes` is not a conforming HTJ2K Lossless RPCL (.202) codestream as DICOM defines it, or nil.
    public func conformanceProblem() -> String? {
        if !usesHTBlockCoder { return "the code blocks are not HT coded" }
        if transformation != 1 { return "the wavelet is not the reversible 5/3" }
        if progressionOrder != 2 { return "the progression order is \(progressionOrder), not RPCL" }
        if (width - 1) >> decompositions >= 64 || (height - 1) >> decompositions >= 64 {
            return "\(decompositions) decompositions leave the lowest resolution larger than 64 pixels"
        }
        if tlmLengths.isEmpty { return "there is no TLM marker" }
        if tlmLengths != tileParts.map(\.range.count) { return "the TLM lengths do not match the tile-parts" }
        if tileParts.count != decompositions + 1 { return "\(tileParts.count) tile-parts for \(decompositions + 1) resolutions" }
        return nil
    }

    /// Rewrites OpenJPH's one-tile-part codestream as one tile-part per resolution with a TLM marker.
    /// `resolutionEnds` are the absolute offsets where each resolution's packets end, lowest first.
    public static func splittingAtResolutions(
        _ bytes: UnsafeRawBufferPointer, resolutionEnds: [Int]
    ) throws(PixelError) -> [UInt8] {
        let parsed = try HTJ2KCodestream(parsing: bytes)
        guard parsed.tileParts.count == 1, let part = parsed.tileParts.first else {
            throw PixelError(.encode, "expected one tile-part, found \(parsed.tileParts.count)")
        }
        guard resolutionEnds.count == parsed.decompositions + 1, resolutionEnds.last == part.range.upperBound else {
            throw PixelError(.encode, "resolution ends \(resolutionEnds) do not close the tile at \(part.range.upperBound)")
        }
        // Isot, TPsot and TNsot are single bytes (T.800 A.4.2): at most 255 tile-parts.
        guard resolutionEnds.count <= 255 else { throw PixelError(.encode, "\(resolutionEnds.count) resolutions") }
        var starts = [part.dataStart]
        for (index, end) in resolutionEnds.enumerated() {
            guard end > starts[index] else { throw PixelError(.encode, "resolution \(index) is empty or out of order") }
            starts.append(end)
        }
        let tilePartHeader = UnsafeRawBufferPointer(rebasing: bytes[(part.range.lowerBound + 12)..<(part.dataStart - 2)])
        let lengths = resolutionEnds.indices.map { index in
            12 + (index == 0 ? tilePartHeader.count : 0) + 2 + (resolutionEnds[index] - starts[index])
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 16 * lengths.count + 8)
        parsed.appendMainHeader(from: bytes, tlm: lengths, to: &output)
        for index in lengths.indices {
            appendSOT(length: lengths[index], index: index, count: lengths.count, to: &output)
            if index == 0 { output.append(contentsOf: tilePartHeader) }
            output.append(0xFF)
            output.append(0x93)
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[starts[index]..<resolutionEnds[index]]))
        }
        output.append(0xFF)
        output.append(0xD9)
        return output
    }

    /// The codestream cut to its first `resolutions` tile-parts (the lowest resolutions), with TLM and TNsot
    /// rewritten to match: what a reader decodes with `decompositions + 1 − resolutions` levels discarded.
    public static func prefix(_ bytes: UnsafeRawBufferPointer, resolutions: Int) throws(PixelError) -> [UInt8] {
        let parsed = try HTJ2KCodestream(parsing: bytes)
        guard parsed.conformanceProblem() == nil else {
            throw PixelError(.unsupported, "the stored frame has no resolution tile-parts")
        }
        guard resolutions >= 1, resolutions <= parsed.tileParts.count, resolutions <= 255 else {
            throw PixelError(.unsupported, "resolution \(resolutions) is outside 1...\(parsed.tileParts.count)")
        }
        let kept = parsed.tileParts.prefix(resolutions)
        var output: [UInt8] = []
        parsed.appendMainHeader(from: bytes, tlm: kept.map(\.range.count), to: &output)
        for part in kept {
            let start = output.count
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[part.range]))
            output[start + 11] = UInt8(resolutions)
        }
        output.append(0xFF)
        output.append(0xD9)
        return output
    }

    /// SOC, SIZ, a TLM of `tlm` (32-bit Ptlm, no Ttlm: one tile), then the other main-header segments but any TLM.
    private func appendMainHeader(from bytes: UnsafeRawBufferPointer, tlm: [Int], to output: inout [UInt8]) {
        output.append(0xFF)
        output.append(0x4F)
        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[sizRange]))
        for segment in mainSegments where segment.code != Marker.tlm {
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[segment.range]))
        }
        Self.appendBigEndian(UInt32(Marker.tlm), bytes: 2, to: &output)
        Self.appendBigEndian(UInt32(4 + 4 * tlm.count), bytes: 2, to: &output)
        output.append(0)  // Ztlm
        output.append(0x40)  // Stlm: ST = 0, SP = 1
        for length in tlm { Self.appendBigEndian(UInt32(length), bytes: 4, to: &output) }
    }

    private static func appendSOT(length: Int, index: Int, count: Int, to output: inout [UInt8]) {
        appendBigEndian(UInt32(Marker.sot), bytes: 2, to: &output)
        appendBigEndian(10, bytes: 2, to: &output)
        appendBigEndian(0, bytes: 2, to: &output)  // Isot: the one tile
        appendBigEndian(UInt32(length), bytes: 4, to: &output)
        output.append(UInt8(index))
        output.append(UInt8(count))
    }

    private static func appendBigEndian(_ value: UInt32, bytes: Int, to output: inout [UInt8]) {
        for shift in stride(from: 8 * (bytes - 1), through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}

extension HTJ2KCodestream {
    /// A stored frame at `skipResolutions` halvings below full resolution, straight from its TLM breakpoints: only
    /// frames stored as HTJ2K Lossless RPCL (.202) have them.
    public static func lowerResolution(
        _ stored: [UInt8], transferSyntaxUID: String, skipResolutions: Int
    ) throws(PixelError) -> [UInt8] {
        guard transferSyntaxUID == LosslessCodec.htj2k.transferSyntaxUID else {
            throw PixelError(.unsupported, "frames stored as \(transferSyntaxUID) have no resolution tile-parts")
        }
        return try stored.withPixelBytes { (bytes) throws(PixelError) -> [UInt8] in
            let levels = try HTJ2KCodestream(parsing: bytes).tileParts.count
            guard skipResolutions >= 0, skipResolutions < levels else {
                throw PixelError(.unsupported, "resolution \(skipResolutions) is outside 0...\(levels - 1)")
            }
            return try prefix(bytes, resolutions: levels - skipResolutions)
        }
    }
}
