import DICOMIngest
import DICOMIngestModel
import DICOMPixels
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// WADO-RS at HealthImaging's DICOMweb paths (`../shared/spec/dicomweb.md` §2, PS3.18 §10.4): series and
/// instance metadata as DICOM JSON, and frames, under `/datastore/{datastoreId}`, beside the REST API on one port
/// and behind the same authentication.
struct DICOMwebRoutes {
    let service: IngestService

    var reader: DICOMwebReader { DICOMwebReader(store: service.store, frameStorage: service.engine.frameStorage) }

    func register(on router: Router<IngestRequestContext>) {
        let series = "/datastore/{datastoreId}/studies/{study}/series/{series}"
        router.get("\(series)/metadata") { request, context in try await seriesMetadata(request, context) }
        router.get("\(series)/instances/{instance}/metadata") { request, context in try await instanceMetadata(request, context) }
        router.get("\(series)/instances/{instance}/frames/{frames}") { request, context in try await frames(request, context) }
        router.get("\(series)/instances/{instance}") { request, context in try await instance(request, context) }
        router.get("\(series)/instances/{instance}/bulkdata/{key}") { request, context in try await bulkData(request, context) }
        let datastore = "/datastore/{datastoreId}"
        router.get("\(datastore)/studies/{study}") { request, context in try await retrieve(request, context, series: false) }
        router.get("\(series)") { request, context in try await retrieve(request, context, series: true) }
        router.get("\(datastore)/studies") { request, context in try await search(.study, request, context) }
        router.get("\(datastore)/series") { request, context in try await search(.series, request, context) }
        router.get("\(datastore)/instances") { request, context in try await search(.instance, request, context) }
        router.get("\(datastore)/studies/{study}/series") { request, context in
            try await search(.series, request, context, study: uid(context, "study"))
        }
        router.get("\(datastore)/studies/{study}/instances") { request, context in
            try await search(.instance, request, context, study: uid(context, "study"))
        }
        router.get("\(series)/instances") { request, context in
            try await search(.instance, request, context, study: uid(context, "study"), series: uid(context, "series"))
        }
    }

    /// The data store, study and series of the path, and the `imageSetId` of the query.
    func scope(_ request: Request, _ context: IngestRequestContext) throws -> DICOMwebReader.Scope {
        let imageSetId = request.query("imageSetId")
        if let imageSetId, !Validation.isResourceId(imageSetId) {
            throw IngestServiceError.validation("imageSetId \"\(imageSetId.prefix(64))\" is not an image set ID")
        }
        return DICOMwebReader.Scope(
            datastoreId: try context.resourceId("datastoreId"), studyInstanceUID: try uid(context, "study"),
            seriesInstanceUID: try uid(context, "series"), imageSetId: imageSetId)
    }

    /// A UID path segment (PS3.5 §9.1: digits and single dots, at most 64 characters); anything else, `..` and an
    /// encoded `/` among them, is a bad request.
    func uid(_ context: IngestRequestContext, _ name: String) throws -> String {
        let value = try context.parameter(name)
        let bytes = value.utf8
        guard (1...64).contains(bytes.count), bytes.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2E }),
            bytes.first != 0x2E, bytes.last != 0x2E, !value.contains("..")
        else { throw IngestServiceError.validation("\"\(value.prefix(80))\" is not a DICOM UID") }
        return value
    }

    func seriesMetadata(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let scope = try scope(request, context)
        let reader = reader
        let base = seriesURI(request, scope)
        let body = try await blocking {
            DICOMwebReader.metadata(try reader.instances(scope).1, seriesURI: base, imageSetId: scope.imageSetId)
        }
        // A large series' parsed instances are freed by now, but glibc keeps what each blocking thread's arena
        // grew to: give it back, or the server keeps the peak of every thread's largest series.
        if body.count > Self.trimAfterBytes { ProcessMemory.returnFreeMemory() }
        return Self.dicomJSON(body)
    }

    func instanceMetadata(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let scope = try scope(request, context)
        let sop = try uid(context, "instance")
        let reader = reader
        let base = seriesURI(request, scope)
        let body = try await blocking {
            DICOMwebReader.metadata([try reader.instance(scope, sopInstanceUID: sop).1], seriesURI: base, imageSetId: scope.imageSetId)
        }
        return Self.dicomJSON(body)
    }

    /// The absolute URI of a scope's series, for `BulkDataURI`s (`datastoreURI`).
    func seriesURI(_ request: Request, _ scope: DICOMwebReader.Scope) -> String {
        datastoreURI(request, scope.datastoreId) + "/studies/\(scope.studyInstanceUID)/series/\(scope.seriesInstanceUID)"
    }

    /// `http://host:port/datastore/{id}` as this request reached the server (`datastoreURI(_:authority:port:publicURL:)`).
    func datastoreURI(_ request: Request, _ datastoreId: String) -> String {
        Self.datastoreURI(
            datastoreId, authority: request.head.authority, port: service.configuration.port,
            publicURL: service.configuration.publicURL)
    }

    /// The data store's DICOMweb root for RetrieveURLs and BulkDataURIs: under the configured `publicURL`, else on
    /// the host the request named (when that is a host name or address), with this server's port when it named
    /// none and the port is not 80 (dicomweb-client sends `Host` without the port).
    static func datastoreURI(_ datastoreId: String, authority: String?, port: Int, publicURL: String?) -> String {
        if let publicURL { return "\(publicURL)/datastore/\(datastoreId)" }
        var host = authority ?? ""
        if host.isEmpty || host.utf8.count > 255
            || !host.utf8.allSatisfy({ $0 < 0x80 && (Character(UnicodeScalar($0)).isLetter || Character(UnicodeScalar($0)).isNumber || ".-:[]".utf8.contains($0)) })
        {
            host = "localhost"
        }
        if !host.contains(":") || (host.hasPrefix("[") && host.hasSuffix("]")), port != 80 { host += ":\(port)" }
        return "http://\(host)/datastore/\(datastoreId)"
    }

    /// GetDICOMBulkdata: one binary value, as `application/octet-stream` or its one part of a multipart body.
    func bulkData(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let scope = try scope(request, context)
        let sop = try uid(context, "instance")
        let key = try context.parameter("key")
        guard key.utf8.count == 32, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw IngestServiceError.validation("\"\(key.prefix(64))\" is not a bulk data key")
        }
        let reader = reader
        guard let bytes = try await blocking({ try reader.instance(scope, sopInstanceUID: sop).1.bulkData(key: key) }) else {
            throw IngestServiceError.notFound("Instance \(sop) has no bulk data \(key)")
        }
        let ranges = try MediaRange.parse(request.headers[.accept])
        let multipart = ranges.first { $0.quality > 0 }?.mediaType.hasPrefix("multipart/") ?? false
        guard !multipart else {
            let boundary = Self.boundary()
            var body = Array("--\(boundary)\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += bytes
            body += Array("\r\n--\(boundary)--\r\n".utf8)
            return Response(
                status: .ok, headers: [.contentType: "multipart/related; type=\"application/octet-stream\"; boundary=\(boundary)"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func dicomJSON(_ body: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/dicom+json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The size of a metadata answer after which the allocator's free memory is returned to the system.
    static let trimAfterBytes = 4 << 20

    /// The most frames one request may ask for.
    static let maximumFramesAsked = 10_000

    /// GetDICOMInstanceFrames: one part per frame, in the order asked, each part's `Content-Type` naming its
    /// transfer syntax (Cornerstone reads it there). Streamed a frame at a time.
    func frames(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let scope = try scope(request, context)
        let sop = try uid(context, "instance")
        let numbers = try Self.frameNumbers(try context.parameter("frames"))
        let ranges = try MediaRange.parse(request.headers[.accept])
        let reader = reader
        let (instance, frames) = try await blocking {
            let (record, instance) = try reader.instance(scope, sopInstanceUID: sop)
            return (instance, try reader.frames(numbers, of: instance, in: record))
        }
        let storedUID = instance.storedTransferSyntaxUID
        let answer = try FrameAnswer.negotiate(ranges, storedUID: storedUID, canServeNative: DICOMwebReader.servesNative(instance))
        let (partType, partSyntax) =
            answer == .native
            ? ("application/octet-stream", FrameAnswer.explicitVRLittleEndian) : (DICOMwebMediaType.frame(storedUID), storedUID)
        let boundary = Self.boundary()
        let partHeader = Array("--\(boundary)\r\nContent-Type: \(partType); transfer-syntax=\(partSyntax)\r\n\r\n".utf8)
        let headers: HTTPFields = [
            .contentType: "multipart/related; type=\"\(partType)\"; boundary=\(boundary)"
        ]
        @Sendable func bytes(_ index: Int) async throws -> [UInt8] {
            let (frame, number) = (frames[index], numbers[index])
            do {
                return try await blocking { try reader.frame(frame, number: number, of: instance, native: answer == .native) }
            } catch {
                logger.error("DICOMweb: frame \(number) of instance \(sop) not served: \(error)")
                throw error
            }
        }
        let logger = context.logger
        // The first frame is ready before the answer starts, so that its failure (a checksum that no longer
        // matches, say) is a 500; a later one can only end the body early, which a client sees as an error.
        let first = try await bytes(0)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            for index in frames.indices {
                let part = index == 0 ? first : try await bytes(index)
                try await writer.write(ByteBuffer(bytes: partHeader))
                try await writer.write(ByteBuffer(bytes: part))
                try await writer.write(ByteBuffer(string: "\r\n"))
            }
            try await writer.write(ByteBuffer(string: "--\(boundary)--\r\n"))
            try await writer.finish(nil)
        })
    }

    /// GetDICOMInstance: the instance as a DICOM P10 file rebuilt from its metadata and stored frames
    /// (`P10Encoder`), in Explicit VR Little Endian (frames decoded) or as stored; streamed a frame at a time.
    func instance(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let scope = try scope(request, context)
        let sop = try uid(context, "instance")
        let ranges = try MediaRange.parse(request.headers[.accept])
        let reader = reader
        let (instance, frames) = try await blocking {
            let (record, instance) = try reader.instance(scope, sopInstanceUID: sop)
            return (instance, try reader.frames(Array(instance.frames.indices.map { $0 + 1 }), of: instance, in: record))
        }
        let answer = try InstanceAnswer.negotiate(
            ranges, storedUID: instance.storedTransferSyntaxUID,
            canServeNative: frames.isEmpty || DICOMwebReader.servesNative(instance))
        let assembly = try P10Assembly(reader: reader, instance: instance, frames: frames, decoded: answer.frames == .native)
        let boundary = Self.boundary()
        let contentType = "application/dicom; transfer-syntax=\(assembly.transferSyntaxUID)"
        let headers: HTTPFields = [
            .contentType: answer.multipart ? "multipart/related; type=\"application/dicom\"; boundary=\(boundary)" : contentType
        ]
        let logger = context.logger
        @Sendable func piece(_ index: Int) async throws -> [UInt8] {
            do {
                return try await blocking { try assembly.piece(index) }
            } catch {
                logger.error("DICOMweb: frame \(index + 1) of instance \(sop) not served: \(error)")
                throw error
            }
        }
        let first = frames.isEmpty ? [] : try await piece(0)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            if answer.multipart {
                try await writer.write(ByteBuffer(string: "--\(boundary)\r\nContent-Type: \(contentType)\r\n\r\n"))
            }
            try await writer.write(ByteBuffer(bytes: assembly.header))
            for index in frames.indices {
                try await writer.write(ByteBuffer(bytes: index == 0 ? first : try await piece(index)))
            }
            try await writer.write(ByteBuffer(bytes: assembly.trailer))
            if answer.multipart { try await writer.write(ByteBuffer(string: "\r\n--\(boundary)--\r\n")) }
            try await writer.finish(nil)
        })
    }

    /// RetrieveStudy and RetrieveSeries (PS3.18 §10.4.1.1.1), which HealthImaging does not serve but PACS ask
    /// (Orthanc's DICOMweb client retrieves a study so): every instance of the study's primary series (or of the
    /// one series; `imageSetId` names another image set) as one part of a `multipart/related` body, each rebuilt
    /// as GetDICOMInstance rebuilds it, in the syntax negotiated for it. Every instance is negotiated before the
    /// answer starts (a 406 names the first that cannot be served so); then one instance at a time is streamed.
    func retrieve(_ request: Request, _ context: IngestRequestContext, series wanted: Bool) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let study = try uid(context, "study")
        let imageSetId = request.query("imageSetId")
        if let imageSetId, !Validation.isResourceId(imageSetId) {
            throw IngestServiceError.validation("imageSetId \"\(imageSetId.prefix(64))\" is not an image set ID")
        }
        let ranges = try MediaRange.parse(request.headers[.accept])
        let reader = reader
        let store = service.store
        let named = wanted ? try uid(context, "series") : nil
        let loaded = try await blocking { () -> [(ImageSetRecord, StoredInstance)] in
            var seriesUIDs: [String] = named.map { [$0] } ?? []
            if named == nil {
                var query = DICOMwebQuery(level: .series)
                query.matches = [SearchMatch(attribute: .studyInstanceUID, condition: .equal(study))]
                query.imageSetId = imageSetId
                while true {
                    let page = try store.searchDICOMweb(datastoreId: datastoreId, query: query)
                    seriesUIDs += page.compactMap { $0.values[.seriesInstanceUID] }
                    guard page.count == query.limit, query.offset + query.limit <= DICOMwebQuery.maximumOffset else { break }
                    query.offset += query.limit
                }
                guard !seriesUIDs.isEmpty else { throw IngestServiceError.notFound("Study \(study) does not exist") }
            }
            return try seriesUIDs.flatMap { series in
                let scope = DICOMwebReader.Scope(
                    datastoreId: datastoreId, studyInstanceUID: study, seriesInstanceUID: series, imageSetId: imageSetId)
                let (record, instances) = try reader.instances(scope)
                return instances.map { (record, $0) }
            }
        }
        let answers = try loaded.map { _, instance in
            try InstanceAnswer.negotiate(
                ranges, storedUID: instance.storedTransferSyntaxUID,
                canServeNative: instance.frames.isEmpty || DICOMwebReader.servesNative(instance))
        }
        let boundary = Self.boundary()
        let logger = context.logger
        let parts = zip(loaded, answers).map { (record: $0.0.0, instance: $0.0.1, native: $0.1.frames == .native) }
        return Response(
            status: .ok, headers: [.contentType: "multipart/related; type=\"application/dicom\"; boundary=\(boundary)"],
            body: ResponseBody { writer in
                try await Self.write(parts, reader: reader, boundary: boundary, logger: logger, to: &writer)
            })
    }

    /// The parts of a RetrieveStudy or RetrieveSeries answer, one instance at a time.
    static func write(
        _ parts: [(record: ImageSetRecord, instance: StoredInstance, native: Bool)], reader: DICOMwebReader, boundary: String,
        logger: Logger, to writer: inout any ResponseBodyWriter
    ) async throws {
        for part in parts {
            do {
                let assembly = try await blocking { () throws -> P10Assembly in
                    let numbers = Array(part.instance.frames.indices.map { $0 + 1 })
                    let frames = try reader.frames(numbers, of: part.instance, in: part.record)
                    return try P10Assembly(reader: reader, instance: part.instance, frames: frames, decoded: part.native)
                }
                let header = "--\(boundary)\r\nContent-Type: application/dicom; transfer-syntax=\(assembly.transferSyntaxUID)\r\n\r\n"
                try await writer.write(ByteBuffer(string: header))
                try await writer.write(ByteBuffer(bytes: assembly.header))
                for index in assembly.frames.indices {
                    let piece = try await blocking { try assembly.piece(index) }
                    try await writer.write(ByteBuffer(bytes: piece))
                }
                try await writer.write(ByteBuffer(bytes: assembly.trailer))
                try await writer.write(ByteBuffer(string: "\r\n"))
            } catch {
                logger.error("DICOMweb: instance \(part.instance.sopInstanceUID) not served: \(error)")
                throw error
            }
        }
        try await writer.write(ByteBuffer(string: "--\(boundary)--\r\n"))
        try await writer.finish(nil)
    }

    /// `1,3,2`: 1-based frame numbers separated by commas, no repeats (PS3.18 §10.4.1.1.4), at most
    /// `maximumFramesAsked`.
    static func frameNumbers(_ list: String) throws -> [Int] {
        guard list.utf8.count <= maximumFramesAsked * 8 else {
            throw IngestServiceError.validation("The frame list asks for more than \(maximumFramesAsked) frames")
        }
        var numbers: [Int] = []
        var seen = Set<Int>()
        for piece in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard piece.utf8.count <= 9, piece.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let number = Int(piece), number >= 1
            else { throw IngestServiceError.validation("The frame list \"\(list.prefix(80))\" is not frame numbers from 1 separated by commas") }
            guard seen.insert(number).inserted else {
                throw IngestServiceError.validation("The frame list asks for frame \(number) twice")
            }
            numbers.append(number)
        }
        guard numbers.count <= maximumFramesAsked else {
            throw IngestServiceError.validation("The frame list asks for more than \(maximumFramesAsked) frames")
        }
        return numbers
    }

    /// A multipart boundary no frame's bytes are likely to hold (RFC 2046 §5.1.1).
    static func boundary() -> String {
        var generator = SystemRandomNumberGenerator()
        return "dicom-ingest-" + (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
    }
}
