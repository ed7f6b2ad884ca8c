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
        router.post("\(base)/updateImageSetMetadata") { request, context in try await update(request, context) }
        router.post("\(base)/copyImageSet") { request, context in try await copy(request, context) }
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
        let (limit, after) = try request.keysetPage()
        let store = service.store
        let page = try await blocking {
            try store.imageSetVersions(datastoreId: datastoreId, imageSetId: record.imageSetId, limit: limit, after: after)
        }
        var members: [(String, JSONValue)] = [("imageSetPropertiesList", .array(page.items.map { version in
            .object([
                ("imageSetId", .string(record.imageSetId)), ("versionId", .string(String(version.version))),
                ("imageSetState", .string(version.version == record.latestVersion ? record.state : "ACTIVE")),
                ("ImageSetWorkflowStatus", .string(record.workflowStatus)), ("createdAt", .double(version.createdAt)),
                ("updatedAt", .double(version.createdAt)), ("isPrimary", .bool(record.isPrimary)),
            ])
        }))]
        if let next = page.nextToken { members.append(("nextToken", .string(next.encoded))) }
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

    /// UpdateImageSetMetadata (spec §1): applied at once, so the answer is the image set as it now is (ACTIVE,
    /// UPDATED) where HealthImaging answers LOCKED, UPDATING and finishes later.
    func update(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, record) = try await imageSet(context)
        guard let text = request.query("latestVersion"), let latest = Int(text), latest >= 1 else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'latestVersionId' failed to satisfy constraint")
        }
        let force = request.query("force") == "true"
        let body = try await request.jsonObject(context: context)
        let updates = body["DICOMUpdates"] as? [String: Any]
        let revert = body["revertToVersionId"] as? String
        guard (updates == nil) != (revert == nil), body.count == 1 else {
            throw IngestServiceError.validation("The updates must hold exactly one of DICOMUpdates and revertToVersionId")
        }
        let update: ImageSetUpdate
        if let revert {
            guard let target = Int(revert), target >= 1 else {
                throw IngestServiceError.validation("1 validation error detected: Value at 'revertToVersionId' failed to satisfy constraint")
            }
            update = .revert(toVersion: target)
        } else {
            func blob(_ name: String) throws -> [UInt8]? {
                guard let value = updates?[name] else { return nil }
                guard let text = value as? String, let data = Data(base64Encoded: text), (1...30_000).contains(data.count) else {
                    throw IngestServiceError.validation("DICOMUpdates.\(name) must be base64 of 1 to 30,000 bytes")
                }
                return [UInt8](data)
            }
            var changes = try MetadataChanges.parse(
                updatable: try blob("updatableAttributes"), removable: try blob("removableAttributes"),
                seriesInstanceUID: record.key.seriesInstanceUID, force: force)
            changes.includeStudyImageSets = request.query("includeStudyImageSets") == "true"
            update = .changes(changes)
        }
        let store = service.store
        let imageSetId = record.imageSetId
        let updated = try await blocking {
            try store.updateImageSetMetadata(datastoreId: datastoreId, imageSetId: imageSetId, latestVersion: latest, update: update, now: now())
        }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(datastoreId)), ("imageSetId", .string(updated.imageSetId)),
            ("latestVersionId", .string(String(updated.latestVersion))), ("imageSetState", .string(updated.state)),
            ("imageSetWorkflowStatus", .string(updated.workflowStatus)), ("createdAt", .double(updated.createdAt)),
            ("updatedAt", .double(updated.updatedAt)),
        ]))
    }

    /// CopyImageSet (spec §1): done at once, like UpdateImageSetMetadata; both image sets are answered as they now are.
    func copy(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let (datastoreId, source) = try await imageSet(context)
        let body = try await request.jsonObject(context: context)
        func version(_ object: [String: Any]?, _ name: String) throws -> Int {
            guard let text = object?["latestVersionId"] as? String, let value = Int(text), value >= 1 else {
                throw IngestServiceError.validation("1 validation error detected: Value at '\(name).latestVersionId' failed to satisfy constraint")
            }
            return value
        }
        guard let sourceInformation = body["sourceImageSet"] as? [String: Any] else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'sourceImageSet' failed to satisfy constraint: Member must not be null")
        }
        var copy = ImageSetCopy(
            sourceImageSetId: source.imageSetId, sourceLatestVersion: try version(sourceInformation, "sourceImageSet"),
            force: request.query("force") == "true", promoteToPrimary: request.query("promoteToPrimary") == "true")
        if let copies = sourceInformation["DICOMCopies"] as? [String: Any] {
            guard let text = copies["copiableAttributes"] as? String, (1...260_000).contains(text.count) else {
                throw IngestServiceError.validation("DICOMCopies.copiableAttributes must be a JSON string of 1 to 260,000 characters")
            }
            copy.instances = try ImageSetCopy.instances(copiableAttributes: text, seriesInstanceUID: source.key.seriesInstanceUID)
        }
        if let destination = body["destinationImageSet"] as? [String: Any] {
            guard let id = destination["imageSetId"] as? String, Validation.isResourceId(id) else {
                throw IngestServiceError.validation("1 validation error detected: Value at 'destinationImageSet.imageSetId' failed to satisfy constraint")
            }
            copy.destination = .init(imageSetId: id, latestVersion: try version(destination, "destinationImageSet"))
        }
        let store = service.store
        let request = copy
        let (from, to) = try await blocking { try store.copyImageSet(datastoreId: datastoreId, copy: request, now: now()) }
        func properties(_ record: ImageSetRecord) -> JSONValue {
            .object([
                ("imageSetId", .string(record.imageSetId)), ("latestVersionId", .string(String(record.latestVersion))),
                ("imageSetState", .string(record.state)), ("imageSetWorkflowStatus", .string(record.workflowStatus)),
                ("createdAt", .double(record.createdAt)), ("updatedAt", .double(record.updatedAt)),
                ("imageSetArn", .string(service.configuration.arn.imageSet(datastoreId, record.imageSetId))),
            ])
        }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(datastoreId)), ("sourceImageSetProperties", properties(from)),
            ("destinationImageSetProperties", properties(to)),
        ]))
    }

    // MARK: SearchImageSets

    func search(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let (limit, after) = try request.keysetPage()
        let criteria = try await request.jsonObject(context: context)
        let store = service.store
        guard try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Data store \(datastoreId) does not exist")
        }
        let filters = try ImageSetFilter.parse(criteria["filters"])
        let sort = criteria["sort"] as? [String: Any]
        guard let sortField = ImageSetQuery.SortField(rawValue: sort?["sortField"] as? String ?? "updatedAt") else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'sort.sortField' failed to satisfy enum value set")
        }
        let ascending = (sort?["sortOrder"] as? String ?? "DESC") == "ASC"
        let query = ImageSetQuery(filters: filters, sortField: sortField, ascending: ascending, limit: limit, after: after)
        let page = try await blocking { try store.searchImageSets(datastoreId: datastoreId, query: query) }
        var members: [(String, JSONValue)] = [("imageSetsMetadataSummaries", .array(page.items.map(\.summaryJSON)))]
        if sort != nil {
            members.append(("sort", .object([("sortOrder", .string(ascending ? "ASC" : "DESC")), ("sortField", .string(sortField.rawValue))])))
        }
        if let next = page.nextToken { members.append(("nextToken", .string(next.encoded))) }
        return JSONResponse.ok(.object(members))
    }

}

/// Parses SearchImageSets' `filters` (spec Appendix A: EQUAL with one value or BETWEEN with two, on one
/// attribute) into the catalog's query.
enum ImageSetFilter {
    static func parse(_ value: Any?) throws -> [ImageSetQuery.Filter] {
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
            var field: ImageSetQuery.Field?
            let bounds = try values.map { value -> ImageSetQuery.Value in
                guard value.count == 1, let (name, raw) = value.first, let parsed = ImageSetQuery.Field(rawValue: name) else {
                    throw IngestServiceError.validation("Each search value must set exactly one known attribute")
                }
                if let field, field != parsed { throw IngestServiceError.validation("BETWEEN bounds must name the same attribute") }
                field = parsed
                switch parsed {
                case .createdAt, .updatedAt:
                    guard let number = raw as? NSNumber, number.doubleValue.isFinite else {
                        throw IngestServiceError.validation("\(name) must be a timestamp")
                    }
                    return .time(number.doubleValue)
                case .isPrimary:
                    guard let flag = raw as? Bool else { throw IngestServiceError.validation("isPrimary must be a boolean") }
                    return .flag(flag)
                case .studyDate:
                    let value = raw as? [String: Any]
                    guard let date = value?["DICOMStudyDate"] as? String, date.utf8.count <= 36 else {
                        throw IngestServiceError.validation("DICOMStudyDateAndTime needs DICOMStudyDate (at most 36 characters)")
                    }
                    let time = value?["DICOMStudyTime"] as? String ?? ""
                    guard time.utf8.count <= 56 else {
                        throw IngestServiceError.validation("DICOMStudyTime has at most 56 characters")
                    }
                    return .text(ImageSetQuery.studyDateTime(date: date, time: time))
                default:
                    guard let text = raw as? String else { throw IngestServiceError.validation("\(name) must be a string") }
                    return .text(text)
                }
            }
            return ImageSetQuery.Filter(field: field!, lower: bounds[0], upper: bounds.count == 2 ? bounds[1] : nil)
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
