import DICOMIngestModel
@testable import DICOMIngestServer
import Testing

/// WADO-RS frame negotiation (PS3.18 §8.7) and frame lists (§10.4.1.1.4), as `DICOMwebRoutes` applies them.
@Suite struct DICOMwebNegotiationTests {
    static let htj2k = "1.2.840.10008.1.2.4.202"

    func answer(_ accept: String?, stored: String = htj2k, native: Bool = true) throws -> FrameAnswer {
        try FrameAnswer.negotiate(try MediaRange.parse(accept), storedUID: stored, canServeNative: native)
    }

    func refusal(_ accept: String?, stored: String = htj2k, native: Bool = true) -> IngestServiceError.Code? {
        do {
            _ = try answer(accept, stored: stored, native: native)
            return nil
        } catch let error as IngestServiceError {
            return error.code
        } catch {
            return .internalServerException
        }
    }

    @Test func quotedAndUnquotedParametersReadAlike() throws {
        let ranges = try MediaRange.parse(#"multipart/related; type="application/octet-stream"; transfer-syntax="*""#)
        #expect(ranges == [MediaRange(mediaType: "multipart/related", parameters: ["type": "application/octet-stream", "transfer-syntax": "*"], quality: 1)])
        let unquoted = try MediaRange.parse("Multipart/Related; TYPE=application/octet-stream; transfer-syntax=*")
        #expect(unquoted.first?.parameters == ranges.first?.parameters)
    }

    @Test func rangesAreOrderedByQualityThenAsWritten() throws {
        let ranges = try MediaRange.parse("image/jpeg;q=0.2, application/octet-stream, image/jphc;q=0.9, */*;q=0.9")
        #expect(ranges.map(\.mediaType) == ["application/octet-stream", "image/jphc", "*/*", "image/jpeg"])
    }

    @Test func aCommaInsideQuotesDoesNotSplitARange() throws {
        let ranges = try MediaRange.parse(#"multipart/related; type="a/b,c"; q=0.5"#)
        #expect(ranges.count == 1)
        #expect(ranges.first?.parameters["type"] == "a/b,c")
    }

    @Test func noSyntaxMeansNativeSamplesAndStarMeansAsStored() throws {
        #expect(try answer(nil) == .native)
        #expect(try answer("*/*") == .native)
        #expect(try answer(#"multipart/related; type="application/octet-stream""#) == .native)
        #expect(try answer("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1") == .native)
        #expect(try answer("multipart/related; type=application/octet-stream; transfer-syntax=*") == .stored)
        #expect(try answer("multipart/related; type=image/jphc; transfer-syntax=\(Self.htj2k)") == .stored)
        #expect(try answer("multipart/related; type=image/jphc") == .stored)
    }

    @Test func framesThatCannotBeDecodedComeAsStoredUnlessNativeIsDemanded() throws {
        let jpeg = "1.2.840.10008.1.2.4.50"
        #expect(try answer(nil, stored: jpeg, native: false) == .stored)
        #expect(refusal("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1", stored: jpeg, native: false)
            == .notAcceptableException)
        #expect(try answer("multipart/related; type=image/jpeg; transfer-syntax=\(jpeg)", stored: jpeg, native: false) == .stored)
    }

    @Test func aTypeOrSyntaxThatIsNotTheStoredOneIsNotAcceptable() {
        #expect(refusal(#"multipart/related; type="image/jpeg""#) == .notAcceptableException)
        #expect(refusal("multipart/related; type=image/jphc; transfer-syntax=1.2.840.10008.1.2.4.203") == .notAcceptableException)
        #expect(refusal("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50") == .notAcceptableException)
        #expect(refusal("application/octet-stream; q=0") == .notAcceptableException)
    }

    @Test func malformedHeadersAreBadRequests() {
        #expect(refusal("not-a-media-type") == .validationException)
        #expect(refusal("text/plain; q=2") == .validationException)
        #expect(refusal(String(repeating: "a/b, ", count: 40)) == .validationException)
        #expect(refusal(String(repeating: "x", count: 5000) + "/y") == .validationException)
        #expect(refusal("a/b c") == .validationException)
    }

    @Test func frameListsAreDistinctNumbersFromOne() throws {
        #expect(try DICOMwebRoutes.frameNumbers("3,1,2") == [3, 1, 2])
        for bad in ["", "0", "1,,2", "1,x", "-1", "1.5", "2,2", "1234567890", " 1"] {
            #expect(throws: IngestServiceError.self, "\(bad)") { try DICOMwebRoutes.frameNumbers(bad) }
        }
        let tooMany = (1...10_001).map(String.init).joined(separator: ",")
        #expect(throws: IngestServiceError.self) { try DICOMwebRoutes.frameNumbers(tooMany) }
        #expect(try DICOMwebRoutes.frameNumbers((1...10_000).map(String.init).joined(separator: ",")).count == 10_000)
    }
}

/// GetDICOMInstance's answers: one body or a part of a multipart body, as asked; ELE or as stored.
@Suite struct DICOMwebInstanceNegotiationTests {
    func answer(_ accept: String?, native: Bool = true) throws -> InstanceAnswer {
        try InstanceAnswer.negotiate(try MediaRange.parse(accept), storedUID: "1.2.840.10008.1.2.4.202", canServeNative: native)
    }

    @Test func theFormAndSyntaxFollowTheRequest() throws {
        #expect(try answer(nil) == InstanceAnswer(frames: .native, multipart: false))
        #expect(try answer("application/dicom") == InstanceAnswer(frames: .native, multipart: false))
        #expect(try answer("application/dicom; transfer-syntax=1.2.840.10008.1.2.4.202") == InstanceAnswer(frames: .stored, multipart: false))
        #expect(try answer(#"multipart/related; type="application/dicom"; transfer-syntax=*"#) == InstanceAnswer(frames: .stored, multipart: true))
        #expect(try answer("application/dicom", native: false) == InstanceAnswer(frames: .stored, multipart: false))
    }

    @Test func otherTypesAndSyntaxesAreNotAcceptable() {
        for accept in ["image/jpeg", "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50", "multipart/related; type=image/jphc"] {
            #expect(throws: IngestServiceError.self, "\(accept)") { try answer(accept) }
        }
        #expect(throws: IngestServiceError.self) { try answer("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", native: false) }
    }
}
