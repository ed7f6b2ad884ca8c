import DICOMCore
import DICOMIngestTestSupport
import DICOMParser
import Testing

/// Tokenizer tests on bytes built in code.
@Suite struct P10ScannerTests {
    static func tokens(_ bytes: [UInt8], options: ParseOptions = ParseOptions()) throws(DICOMParseError) -> ([P10Token], P10Scanner) {
        var scanner = P10Scanner(input: MemoryByteInput(bytes), buffer: P10ReadBuffer(capacity: 64), options: options)
        var tokens: [P10Token] = []
        while let token = try scanner.next() { tokens.append(token) }
        return (tokens, scanner)
    }

    static func elementTags(_ tokens: [P10Token]) -> [DICOMTag] {
        tokens.compactMap { if case .element(let header) = $0 { return header.tag } else { return nil } }
    }

    static func sampleBuilder(_ syntax: TransferSyntax, _ encoding: P10Builder.Encoding) -> P10Builder {
        var builder = P10Builder(transferSyntaxUID: syntax.uid, encoding: encoding)
        builder.string(.sopInstanceUID, .UI, "1.2.3")
        builder.beginSequence(DICOMTag(group: 0x0008, element: 0x1032))
        builder.beginItem()
        builder.string(DICOMTag(group: 0x0008, element: 0x0100), .SH, "CODE")
        builder.beginSequence(DICOMTag(group: 0x0040, element: 0xA168), definedLength: true)
        builder.beginItem(definedLength: true)
        builder.string(DICOMTag(group: 0x0008, element: 0x0104), .LO, "deep")
        builder.endItem()
        builder.endSequence()
        builder.endItem()
        builder.endSequence()
        builder.string(.patientName, .PN, "Doe^John")
        builder.uint16(.rows, 512)
        builder.element(.pixelData, .OW, bytes: [UInt8](repeating: 7, count: 32))
        return builder
    }

    @Test(arguments: [
        (TransferSyntax.explicitVRLittleEndian, P10Builder.Encoding.explicitLittle),
        (TransferSyntax.implicitVRLittleEndian, P10Builder.Encoding.implicitLittle),
        (TransferSyntax.explicitVRBigEndian, P10Builder.Encoding.explicitBig),
    ])
    func tokenizesEachUncompressedEncoding(syntax: TransferSyntax, encoding: P10Builder.Encoding) throws {
        let (tokens, scanner) = try Self.tokens(Self.sampleBuilder(syntax, encoding).build())
        #expect(scanner.transferSyntax == syntax)
        #expect(scanner.fileMeta.hasPreamble)
        let tags = Self.elementTags(tokens).filter { $0.group != 0x0002 }
        #expect(tags == [.sopInstanceUID, DICOMTag(group: 0x0008, element: 0x0100), DICOMTag(group: 0x0008, element: 0x0104), .patientName, .rows, .pixelData])
        #expect(tokens.filter { $0 == .sequenceEnd }.count == 2)
        #expect(tokens.filter { $0 == .itemEnd }.count == 2)
        #expect(scanner.warningCount == 0)
    }

    @Test func readsValuesInBigEndian() throws {
        var scanner = P10Scanner(
            input: MemoryByteInput(Self.sampleBuilder(.explicitVRBigEndian, .explicitBig).build()),
            buffer: P10ReadBuffer())
        while let token = try scanner.next() {
            if case .element(let header) = token, header.tag == .rows {
                let bytes = try scanner.valueBytes(of: header)
                #expect(UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == 512)
                return
            }
        }
        Issue.record("Rows not found")
    }

    @Test func stopsBeforePixelDataWithoutReadingIt() throws {
        var builder = Self.sampleBuilder(.explicitVRLittleEndian, .explicitLittle)
        builder.string(DICOMTag(group: 0xFFFC, element: 0xFFFC), .OB, "after")
        let (tokens, _) = try Self.tokens(builder.build(), options: ParseOptions(stopBeforePixelData: true))
        #expect(Self.elementTags(tokens).last == .pixelData)
    }

    @Test func undefinedLengthUNIsReadAsImplicitSequence() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.element(DICOMTag(group: 0x0009, element: 0x0010), .LO, bytes: P10Builder.padText("CREATOR"))
        builder.raw(P10Builder.le16(0x0009) + P10Builder.le16(0x1001) + Array("UN".utf8) + [0, 0] + P10Builder.le32(0xFFFF_FFFF))
        builder.raw(P10Builder.le16(0xFFFE) + P10Builder.le16(0xE000) + P10Builder.le32(0xFFFF_FFFF))
        // Implicit VR LE inside: (0010,0020) LO length 4.
        builder.raw(P10Builder.le16(0x0010) + P10Builder.le16(0x0020) + P10Builder.le32(4) + Array("ABCD".utf8))
        builder.raw(P10Builder.le16(0xFFFE) + P10Builder.le16(0xE00D) + P10Builder.le32(0))
        builder.raw(P10Builder.le16(0xFFFE) + P10Builder.le16(0xE0DD) + P10Builder.le32(0))
        builder.string(.studyInstanceUID, .UI, "1.2")
        let (tokens, _) = try Self.tokens(builder.build())
        #expect(Self.elementTags(tokens).contains(.patientID))
        #expect(Self.elementTags(tokens).last == .studyInstanceUID)
    }

    @Test func yieldsFragmentsOfEncapsulatedPixelData() throws {
        var builder = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.4.50")
        builder.string(.numberOfFrames, .IS, "2")
        builder.encapsulatedPixelData(basicOffsetTable: [0, 14], fragments: [[0xFF, 0xD8, 1, 2, 3, 4], [0xFF, 0xD8, 5, 6]])
        let (tokens, _) = try Self.tokens(builder.build())
        let fragments = tokens.compactMap { token -> Int? in
            if case .fragment(_, let length) = token { return length } else { return nil }
        }
        #expect(fragments == [8, 6, 4])
        #expect(tokens.last == .encapsulatedPixelDataEnd)
    }

    @Test func rejectsJunkAsNotDICOM() {
        for junk in [Array("hello, this is text and not DICOM at all\n".utf8), [0x89, 0x50, 0x4E, 0x47] + [UInt8](repeating: 0, count: 200), Array("PK\u{3}\u{4}zipzipzipzip".utf8)] {
            do throws(DICOMParseError) {
                _ = try Self.tokens(junk)
                Issue.record("junk accepted")
            } catch { #expect(error.code == .notDICOM) }
        }
    }

    @Test func reportsTruncationWithOffsetAndTag() throws {
        let bytes = Self.sampleBuilder(.explicitVRLittleEndian, .explicitLittle).build()
        let cut = Array(bytes.dropLast(10))
        do throws(DICOMParseError) {
            _ = try Self.tokens(cut)
            Issue.record("expected a truncation error")
        } catch {
            #expect(error.code == .truncated)
            #expect(error.tag == .pixelData)
            #expect(error.offset > 132)
        }
    }

    @Test func readsRawDataSetWithoutMetaAndWarns() throws {
        var builder = P10Builder(transferSyntaxUID: nil, encoding: .implicitLittle)
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.3")
        let (tokens, scanner) = try Self.tokens(builder.build())
        #expect(Self.elementTags(tokens) == [.sopClassUID, .sopInstanceUID])
        #expect(scanner.warnings.map(\.code) == [.missingFileMeta])
        #expect(scanner.transferSyntax == .implicitVRLittleEndian)
    }

    @Test func detectsMetaDeclaringTheWrongEncoding() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid, encoding: .implicitLittle)
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.patientName, .PN, "Doe")
        let (tokens, scanner) = try Self.tokens(builder.build())
        #expect(Self.elementTags(tokens).filter { $0.group != 2 } == [.sopClassUID, .patientName])
        #expect(scanner.warnings.map(\.code).contains(.encodingMismatch))
    }

    @Test func warnsOnOddLengthAndDuplicateTags() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.element(.patientID, .LO, bytes: Array("ABC".utf8))
        builder.element(.patientID, .LO, bytes: Array("ABCD".utf8))
        let (_, scanner) = try Self.tokens(builder.build())
        #expect(scanner.warnings.map(\.code).contains(.oddLength))
        #expect(scanner.warnings.map(\.code).contains(.duplicateTag))
    }

    @Test func zeroPaddingAfterTheLastElementEndsTheDataSetWithAWarning() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.element(.patientID, .LO, bytes: Array("ABCD".utf8))
        builder.element(.rows, .US, bytes: [64, 0])
        let (tokens, scanner) = try Self.tokens(builder.build() + [UInt8](repeating: 0, count: 4096))
        #expect(Self.elementTags(tokens).suffix(2) == [.patientID, .rows])
        #expect(scanner.warnings.map(\.code) == [.trailingPadding])
        // Non-zero bytes there are still an error.
        #expect(throws: DICOMParseError.self) {
            _ = try Self.tokens(builder.build() + [0, 0, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 64))
        }
    }

    @Test func rejectsElementOverrunningItsItem() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.beginSequence(DICOMTag(group: 0x0008, element: 0x1032), definedLength: true)
        builder.raw(P10Builder.le16(0xFFFE) + P10Builder.le16(0xE000) + P10Builder.le32(8))
        builder.element(.patientID, .LO, bytes: Array("ABCDEFGH".utf8))
        builder.endSequence()
        #expect(throws: DICOMParseError.self) { try Self.tokens(builder.build()) }
    }

    @Test func missingMetaGroupLengthIsAWarning() throws {
        var builder = P10Builder(transferSyntaxUID: nil)
        builder.raw(P10Builder.le16(2) + P10Builder.le16(0x10) + Array("UI".utf8) + P10Builder.le16(20) + P10Builder.padUID("1.2.840.10008.1.2.1"))
        builder.string(.sopInstanceUID, .UI, "1.2.3")
        let bytes = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + builder.build()
        let (tokens, scanner) = try Self.tokens(bytes)
        #expect(Self.elementTags(tokens).last == .sopInstanceUID)
        #expect(scanner.warnings.map(\.code).contains(.missingGroupLength))
    }
}

/// Input the tokenizer must survive whatever it holds (issue 10).
@Suite struct HostileTokenizerInputTests {
    static func nested(_ depth: Int) -> [UInt8] {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.string(.sopInstanceUID, .UI, "1.2.3")
        builder.nestedSequences(depth: depth)
        return builder.build()
    }

    @Test func sequencesNestUpToTheLimitAndNoDeeper() throws {
        let options = ParseOptions(maxSequenceDepth: 128)
        let (tokens, _) = try P10ScannerTests.tokens(Self.nested(128), options: options)
        #expect(tokens.filter { if case .sequenceStart = $0 { true } else { false } }.count == 128)
        // 25,000 levels: a precise error at the 129th, never a stack overflow.
        #expect {
            try P10ScannerTests.tokens(Self.nested(25_000), options: options)
        } throws: { error in
            let error = error as? DICOMParseError
            return error?.code == .nestingTooDeep && error?.tag == DICOMTag(group: 0x0040, element: 0xA730)
        }
    }

    @Test func elementAndFragmentCountsAreBounded() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        for index in 0..<20 { builder.string(DICOMTag(group: 0x0011, element: UInt16(0x1000 + index)), .LO, "x") }
        #expect(throws: DICOMParseError.self) { try P10ScannerTests.tokens(builder.build(), options: ParseOptions(maxDataElements: 10)) }
        // The file meta elements count too.
        _ = try P10ScannerTests.tokens(builder.build(), options: ParseOptions(maxDataElements: 30))

        var encapsulated = P10Builder(transferSyntaxUID: "1.2.840.10008.1.2.4.50")
        encapsulated.encapsulatedPixelData(basicOffsetTable: [], fragments: Array(repeating: [0xFF, 0xD8], count: 100))
        #expect {
            try P10ScannerTests.tokens(encapsulated.build(), options: ParseOptions(maxFragments: 50))
        } throws: { ($0 as? DICOMParseError)?.code == .limitExceeded }
        // The Basic Offset Table item counts as a fragment token too.
        _ = try P10ScannerTests.tokens(encapsulated.build(), options: ParseOptions(maxFragments: 101))
    }

    /// The read window grows for one large value and is back to its usual size for the next file.
    @Test func theReadWindowShrinksAfterALargeValue() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.element(DICOMTag(group: 0x0011, element: 0x1010), .OB, bytes: [UInt8](repeating: 1, count: 4 << 20))
        let bytes = builder.build()
        let buffer = P10ReadBuffer()
        var scanner = P10Scanner(input: MemoryByteInput(bytes), buffer: buffer)
        while let token = try scanner.next() {
            if case .element(let header) = token, header.length > 1000 {
                _ = try scanner.withBytes(at: header.valueOffset, count: Int(header.length)) { $0.count }
            }
        }
        #expect(buffer.capacity >= 4 << 20)
        _ = P10Scanner(input: MemoryByteInput(bytes), buffer: buffer)
        #expect(buffer.capacity == ParseOptions().readChunkSize)
    }

    /// A million stray delimiters are skipped in a loop (they were skipped by recursion, one frame each).
    @Test func millionsOfStrayDelimitersDoNotRecurse() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.string(.sopInstanceUID, .UI, "1.2.3")
        let stray = P10Builder.le16(0xFFFE) + P10Builder.le16(0xE00D) + P10Builder.le32(0)
        builder.raw(Array([[UInt8]](repeating: stray, count: 1_000_000).joined()))
        builder.string(.patientName, .PN, "Doe^Jane")
        let (tokens, scanner) = try P10ScannerTests.tokens(builder.build())
        #expect(P10ScannerTests.elementTags(tokens).last == .patientName)
        #expect(scanner.warningCount == 1_000_000)
    }
}

@Suite struct EncapsulatedFramesTests {
    let fragments = [0, 100, 300, 350].map { EncapsulatedFrames.Fragment(valueOffset: 1000 + $0 + 8, length: $0 == 300 ? 42 : 92) }

    @Test func usesBasicOffsetTable() throws {
        let layout = try #require(
            EncapsulatedFrames.layout(
                fragments: fragments, basicOffsetTable: [0, 300], extendedOffsetTable: nil, numberOfFrames: 2,
                startsCodestream: []))
        #expect(layout.frames == [0..<2, 2..<4])
        #expect(layout.source == .basicOffsetTable)
    }

    @Test func fallsBackToMarkersWhenTableIsWrong() throws {
        let layout = try #require(
            EncapsulatedFrames.layout(
                fragments: fragments, basicOffsetTable: [0, 123], extendedOffsetTable: nil, numberOfFrames: 2,
                startsCodestream: [true, false, false, true]))
        #expect(layout.frames == [0..<3, 3..<4])
        #expect(layout.offsetTableProblem != nil)
    }

    @Test func singleFrameOwnsAllFragments() throws {
        let layout = try #require(
            EncapsulatedFrames.layout(
                fragments: fragments, basicOffsetTable: [], extendedOffsetTable: nil, numberOfFrames: 1,
                startsCodestream: []))
        #expect(layout.frames == [0..<4])
    }

    /// An Extended Offset Table entry near 2^64 is one past every fragment, not an arithmetic trap (issue 10).
    @Test func offsetTableEntriesPastIntMaxFallBack() throws {
        for huge: UInt64 in [1 << 63, UInt64(Int.max), UInt64.max] {
            let layout = try #require(
                EncapsulatedFrames.layout(
                    fragments: fragments, basicOffsetTable: [0, huge], extendedOffsetTable: [0, huge], numberOfFrames: 2,
                    startsCodestream: [true, false, false, true]))
            #expect(layout.source == .codestreamMarkers)
            #expect(layout.offsetTableProblem != nil)
        }
    }

    @Test func givesUpWhenNothingMatches() {
        #expect(
            EncapsulatedFrames.layout(
                fragments: fragments, basicOffsetTable: [], extendedOffsetTable: nil, numberOfFrames: 3,
                startsCodestream: [true, true, false, false]) == nil)
    }
}
