import DICOMIngest
import DICOMIngestModel
import DICOMPixels
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

// MARK: - Image sets

struct ImageSetRoutes {
    let service: IngestService

    func register(on router: Router<IngestRequestContext>) {
        let base = "/datastore/{datastoreId}/imageSet/{imageSetId}"
        router.post("/datastore/{datastoreId}/searchImageSets") { request, context in try await search(request, context) }
        router.post("\(base)/getImageSet") { request, context in try await get(request, context) }
        router.post("\(base)/getImageSetMetadata") { request, context in try await metadata(request, context) }
        router.post("\(base)/getImageFrame") { request, context in try await frame(request, context) }
        router.post("\(base)/listImageSetVersions") { request, context in try await versions(request, context) }
        router.post("\(base)/deleteImageSet") { _, context in try await delete(context) }
    }

    /// The data store and image set of the path, both existing.
    func imageSet(_ context: IngestRequestContext) async throws -> (String, ImageSetRecord) {
        let datastoreId = try context.resourceId("datastoreId")
        let imageSetId = try context.resourceId("imageSetId")
        let store = service.store
        guard try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Data store \(datastoreId) does not exist")
        }
        guard let record = try await blocking({ try store.imageSet(datastoreId: datastoreId, imageSetId: imageSetId) }),
            record.state != "DELETED"
        else { throw IngestServiceError.notFound("Image set \(imageSetId) does not exist") }
        return (datastoreId, record)
    }

    func version(_ request: Request, latest: Int) throws -> Int? {
        guard let text = request.query("version") else { return nil }
        guard let value = Int(text), value >= 1 else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'versionId' failed to satisfy constraint")
        }
        guard value <= latest else { throw IngestServiceError.notFound("Image set version \(value) does not exist") }
        return value
    }

    func get(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        let version = try version(request, latest: record.latestVersion) ?? record.latestVersion
        return JSONResponse.ok(
            record.propertiesJSON(version: version, arn: service.configuration.arn.imageSet(datastoreId, record.imageSetId)))
    }

    /// GetImageSetMetadata: the stored gzip document as the body, `Content-Encoding: gzip` (spec §0.5).
    func metadata(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        let version = try version(request, latest: record.latestVersion)
        let store = service.store
        guard let gzip = try await blocking({ try store.metadataDocument(datastoreId: datastoreId, imageSetId: record.imageSetId, version: version) })
        else { throw IngestServiceError.notFound("Image set \(record.imageSetId) has no such version") }
        return Response(
            status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
            body: .init(byteBuffer: ByteBuffer(bytes: gzip)))
    }

    func frame(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        let imageSetId = record.imageSetId
        let body = try await request.jsonObject(context: context)
        guard let frameId = body["imageFrameId"] as? String, Validation.isResourceId(frameId) else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'imageFrameId' failed to satisfy constraint")
        }
        let store = service.store
        let storage = service.engine.frameStorage
        guard let frame = try await blocking({ try store.frame(datastoreId: datastoreId, imageSetId: imageSetId, frameId: frameId) })
        else { throw IngestServiceError.notFound("Image frame \(frameId) does not exist in image set \(imageSetId)") }
        let headers: HTTPFields = [.contentType: Self.contentType(for: frame.transferSyntaxUID)]
        // Beyond HealthImaging: `?resolution=L` returns the frame L halvings down, cut at its TLM breakpoints.
        if let level = request.uri.queryParameters.get("resolution") {
            guard let skip = Int(level), skip >= 0 else {
                throw IngestServiceError.validation("resolution must be a whole number from 0")
            }
            let bytes = try await blocking { try storage.read(blob: frame.blob, offset: frame.offset, length: frame.length) }
            do {
                let lower = try HTJ2KCodestream.lowerResolution(bytes, transferSyntaxUID: frame.transferSyntaxUID, skipResolutions: skip)
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: lower)))
            } catch {
                throw IngestServiceError.validation(error.message)
            }
        }
        // Streamed a piece at a time: a frame of hundreds of megabytes is never held whole, per request.
        let (blob, offset, length) = (frame.blob, frame.offset, frame.length)
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: length) { writer in
            var sent = 0
            while sent < length {
                let count = min(Self.framePieceBytes, length - sent)
                let start = offset + sent
                let piece = try await blocking { try storage.read(blob: blob, offset: start, length: count) }
                try await writer.write(ByteBuffer(bytes: piece))
                sent += count
            }
            try await writer.finish(nil)
        })
    }

    /// The most of a frame one response holds in memory at once.
    static let framePieceBytes = 1 << 20

    /// GetImageFrame's content type per stored transfer syntax (spec §1.5; JPEG-LS, JPEG lossless and JPEG 2000
    /// lossless, which HealthImaging transcodes, get their DICOMweb media types).
    static func contentType(for uid: String) -> String {
        switch uid {
        case "", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202": return "image/jph"
        case "1.2.840.10008.1.2.4.203": return "image/jphc"
        case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93":
            return "image/j2c"
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
            return "image/jpeg"
        case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81": return "image/jls"
        case "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112": return "image/jxl"
        case "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.101.1":
            return "video/mpeg"
        case "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108": return "video/H256"
        default:
            if uid.hasPrefix("1.2.840.10008.1.2.4.10") { return "video/mp4" }
            return "application/octet-stream"
        }
    }

    func versions(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        let (limit, offset) = try request.page()
        let store = service.store
        let all = try await blocking { try store.imageSetVersions(datastoreId: datastoreId, imageSetId: record.imageSetId) }
        let (page, next) = paginate(all.reversed(), limit: limit, offset: offset)
        var members: [(String, JSONValue)] = [("imageSetPropertiesList", .array(page.map { version in
            .object([
                ("imageSetId", .string(record.imageSetId)), ("versionId", .string(String(version.version))),
                ("imageSetState", .string(version.version == record.latestVersion ? record.state : "ACTIVE")),
                ("ImageSetWorkflowStatus", .string(record.workflowStatus)), ("createdAt", .double(version.createdAt)),
                ("updatedAt", .double(version.createdAt)), ("isPrimary", .bool(record.isPrimary)),
            ])
        }))]
        if let next { members.append(("nextToken", .string(next))) }
        return JSONResponse.ok(.object(members))
    }

    func delete(_ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        let store = service.store
        let deleted = try await blocking { try store.deleteImageSet(datastoreId: datastoreId, imageSetId: record.imageSetId, now: now()) }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(datastoreId)), ("imageSetId", .string(deleted.imageSetId)),
            ("imageSetState", .string(deleted.state)), ("imageSetWorkflowStatus", .string(deleted.workflowStatus)),
        ]))
    }

    // MARK: SearchImageSets

    func search(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let (limit, offset) = try request.page()
        let criteria = try await request.jsonObject(context: context)
        let store = service.store
        guard try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Data store \(datastoreId) does not exist")
        }
        let filters = try ImageSetFilter.parse(criteria["filters"])
        let sort = criteria["sort"] as? [String: Any]
        let sortField = sort?["sortField"] as? String ?? "updatedAt"
        let ascending = (sort?["sortOrder"] as? String ?? "DESC") == "ASC"
        guard ["updatedAt", "createdAt", "DICOMStudyDateAndTime"].contains(sortField) else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'sort.sortField' failed to satisfy enum value set")
        }
        var matches = try await blocking { try store.imageSets(datastoreId: datastoreId) }
            .filter { record in record.state != "DELETED" && filters.allSatisfy { $0.matches(record) } }
        matches.sort { lhs, rhs in
            let order: Bool
            switch sortField {
            case "createdAt": order = lhs.createdAt < rhs.createdAt
            case "DICOMStudyDateAndTime": order = lhs.key.studyDate < rhs.key.studyDate
            default: order = lhs.updatedAt < rhs.updatedAt
            }
            return ascending ? order : !order
        }
        let (page, next) = paginate(matches, limit: limit, offset: offset)
        var members: [(String, JSONValue)] = [("imageSetsMetadataSummaries", .array(page.map(\.summaryJSON)))]
        if sort != nil {
            members.append(("sort", .object([("sortOrder", .string(ascending ? "ASC" : "DESC")), ("sortField", .string(sortField))])))
        }
        if let next { members.append(("nextToken", .string(next))) }
        return JSONResponse.ok(.object(members))
    }

}

/// One `SearchFilter` (spec Appendix A): EQUAL with one value or BETWEEN with two, on one attribute.
struct ImageSetFilter {
    enum Field: String {
        case patientID = "DICOMPatientId", accessionNumber = "DICOMAccessionNumber", studyID = "DICOMStudyId"
        case studyUID = "DICOMStudyInstanceUID", seriesUID = "DICOMSeriesInstanceUID"
        case createdAt, updatedAt, studyDate = "DICOMStudyDateAndTime", isPrimary
    }

    enum Bound {
        case text(String)
        case time(Double)
        case flag(Bool)
    }

    var field: Field
    var between: Bool
    var bounds: [Bound]

    static func parse(_ value: Any?) throws -> [ImageSetFilter] {
        guard let value else { return [] }
        guard let list = value as? [[String: Any]], (1...2).contains(list.count) else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'filters' failed to satisfy constraint")
        }
        return try list.map { filter in
            guard let op = filter["operator"] as? String, op == "EQUAL" || op == "BETWEEN",
                let values = filter["values"] as? [[String: Any]], values.count == (op == "EQUAL" ? 1 : 2)
            else {
                throw IngestServiceError.validation("Each filter needs an operator EQUAL with one value or BETWEEN with two")
            }
            var field: Field?
            let bounds = try values.map { value -> Bound in
                guard value.count == 1, let (name, raw) = value.first, let parsed = Field(rawValue: name) else {
                    throw IngestServiceError.validation("Each search value must set exactly one known attribute")
                }
                if let field, field != parsed { throw IngestServiceError.validation("BETWEEN bounds must name the same attribute") }
                field = parsed
                switch parsed {
                case .createdAt, .updatedAt:
                    guard let number = raw as? NSNumber else { throw IngestServiceError.validation("\(name) must be a timestamp") }
                    return .time(number.doubleValue)
                case .isPrimary:
                    guard let flag = raw as? Bool else { throw IngestServiceError.validation("isPrimary must be a boolean") }
                    return .flag(flag)
                case .studyDate:
                    guard let date = (raw as? [String: Any])?["DICOMStudyDate"] as? String else {
                        throw IngestServiceError.validation("DICOMStudyDateAndTime needs DICOMStudyDate")
                    }
                    return .text(date)
                default:
                    guard let text = raw as? String else { throw IngestServiceError.validation("\(name) must be a string") }
                    return .text(text)
                }
            }
            return ImageSetFilter(field: field!, between: op == "BETWEEN", bounds: bounds)
        }
    }

    func matches(_ record: ImageSetRecord) -> Bool {
        switch field {
        case .isPrimary:
            guard case .flag(let flag) = bounds[0] else { return false }
            return record.isPrimary == flag
        case .createdAt, .updatedAt:
            let value = field == .createdAt ? record.createdAt : record.updatedAt
            let times = bounds.compactMap { if case .time(let t) = $0 { return t } else { return nil } }
            return between ? (times[0]...max(times[0], times[1])).contains(value) : value == times[0]
        default:
            let value: String
            switch field {
            case .patientID: value = record.key.patientID
            case .accessionNumber: value = record.key.accessionNumber
            case .studyID: value = record.key.studyID
            case .studyUID: value = record.key.studyInstanceUID
            case .seriesUID: value = record.key.seriesInstanceUID
            default: value = record.key.studyDate
            }
            let texts = bounds.compactMap { if case .text(let t) = $0 { return t } else { return nil } }
            return between ? (texts[0] <= value && value <= texts[1]) : value == texts[0]
        }
    }
}

// MARK: - Tags

struct TagRoutes {
    let service: IngestService

    func register(on router: Router<IngestRequestContext>) {
        router.get("/tags/{resourceArn}") { _, context in try await list(context) }
        router.post("/tags/{resourceArn}") { request, context in try await tag(request, context) }
        router.delete("/tags/{resourceArn}") { request, context in try await untag(request, context) }
    }

    /// The ARN (one percent-encoded path segment, spec §1.1) of an existing data store or image set.
    func resource(_ context: IngestRequestContext) async throws -> String {
        let arn = try context.parameter("resourceArn")
        let prefix = "arn:aws:medical-imaging:\(service.configuration.region):\(service.configuration.accountId):datastore/"
        guard arn.hasPrefix(prefix) else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'resourceArn' failed to satisfy constraint")
        }
        let parts = arn.dropFirst(prefix.count).split(separator: "/").map(String.init)
        let store = service.store
        guard let datastoreId = parts.first, try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Resource \(arn) does not exist")
        }
        if parts.count == 3, parts[1] == "imageset" {
            let imageSetId = parts[2]
            guard try await blocking({ try store.imageSet(datastoreId: datastoreId, imageSetId: imageSetId) }) != nil else {
                throw IngestServiceError.notFound("Resource \(arn) does not exist")
            }
        } else if parts.count != 1 {
            throw IngestServiceError.validation("1 validation error detected: Value at 'resourceArn' failed to satisfy constraint")
        }
        return arn
    }

    func list(_ context: IngestRequestContext) async throws -> Response {
        let arn = try await resource(context)
        let store = service.store
        let tags = try await blocking { try store.tags(resourceArn: arn) }
        return JSONResponse.ok(.object([("tags", .object(tags.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]))
    }

    func tag(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let arn = try await resource(context)
        guard let tags = try await request.jsonObject(context: context)["tags"] as? [String: String] else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'tags' failed to satisfy constraint")
        }
        guard tags.keys.allSatisfy({ (1...128).contains($0.count) && !$0.hasPrefix("aws:") }), tags.values.allSatisfy({ $0.count <= 256 })
        else { throw IngestServiceError.validation("1 validation error detected: Value at 'tags' failed to satisfy constraint") }
        let store = service.store
        try await blocking { try store.tagResource(resourceArn: arn, tags: tags) }
        return JSONResponse.ok(.object([]))
    }

    func untag(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let arn = try await resource(context)
        let keys = request.uri.queryParameters.getAll("tagKeys").map { $0.removingPercentEncoding ?? $0 }
        let store = service.store
        try await blocking { try store.untagResource(resourceArn: arn, keys: keys) }
        return JSONResponse.ok(.object([]))
    }
}
