import AWSSigV4
import DICOMIngest
import DICOMIngestModel
import DICOMPixels
import DICOMIngestServer
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMIngestTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Prometheus
import Testing

/// Every operation and error at the router level, with the real SQLite store and engine.
@Suite struct ServerRouterTests {
    struct Harness {
        let folder: TemporaryFolder
        let store: SQLiteImageSetStore
        let engine: ImportEngine
        let runner: JobRunner
        let service: IngestService

        /// Jobs may use local prefixes under the test's folder; any role is accepted unless the configuration
        /// lists roles of its own.
        init(configuration base: ServerConfiguration = ServerConfiguration()) throws {
            folder = try TemporaryFolder("server")
            var configuration = base
            if configuration.localRoots.isEmpty { configuration.localRoots = [folder.path] }
            if configuration.roles.isEmpty { configuration.roles = ["*": .init()] }
            store = try SQLiteImageSetStore(directory: folder.sub("store"))
            let registry = PrometheusCollectorRegistry()
            engine = ImportEngine(
                store: store, frameStorage: store.frameStorage,
                configuration: .init(threads: 2, metrics: IngestService.metricsFactory(for: registry)))
            runner = JobRunner(engine: engine, io: LocalObjectIOFactory())
            service = IngestService(configuration: configuration, engine: engine, runner: runner, registry: registry)
        }

        func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
            let app = buildApplication(service: service, logger: Logger(label: "test"))
            try await app.test(.router) { client in try await body(client) }
        }
    }

    static func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(Array(buffer: response.body))) as? [String: Any])
    }

    static func body(_ object: [String: Any]) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func expectError(_ response: TestResponse, _ status: Int, _ type: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(Int(response.status.code) == status, sourceLocation: sourceLocation)
        #expect(response.headers[HTTPField.Name("x-amzn-ErrorType")!] == type, sourceLocation: sourceLocation)
        let object = try json(response)
        #expect(object["__type"] as? String == type, sourceLocation: sourceLocation)
        #expect((object["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    }

    static func createDatastore(_ client: any TestClientProtocol) async throws -> String {
        let created = try await client.execute(uri: "/datastore", method: .post, body: try body(["datastoreName": "test"]))
        #expect(created.status == .ok)
        return try #require(try json(created)["datastoreId"] as? String)
    }

    @Test func datastoreOperations() async throws {
        let harness = try Harness()
        defer { harness.folder.remove() }
        try await harness.test { client in
            let id = try await Self.createDatastore(client)
            let got = try Self.json(try await client.execute(uri: "/datastore/\(id)", method: .get))
            let properties = try #require(got["datastoreProperties"] as? [String: Any])
            #expect(properties["datastoreStatus"] as? String == "ACTIVE")
            #expect((properties["datastoreArn"] as? String)?.hasSuffix(":datastore/\(id)") == true)
            #expect(properties["createdAt"] is Double || properties["createdAt"] is Int)
            #expect(properties["losslessStorageFormat"] as? String == "HTJ2K")
            let jpeg2000 = try Self.json(try await client.execute(
                uri: "/datastore", method: .post,
                body: try Self.body(["datastoreName": "j2k", "losslessStorageFormat": "JPEG_2000_LOSSLESS"])))
            let jpeg2000Id = try #require(jpeg2000["datastoreId"] as? String)
            let jpeg2000Properties = try Self.json(try await client.execute(uri: "/datastore/\(jpeg2000Id)", method: .get))["datastoreProperties"] as? [String: Any]
            #expect(jpeg2000Properties?["losslessStorageFormat"] as? String == "JPEG_2000_LOSSLESS")
            _ = try await client.execute(uri: "/datastore/\(jpeg2000Id)", method: .delete)
            try Self.expectError(
                try await client.execute(uri: "/datastore", method: .post, body: try Self.body(["datastoreName": "x", "losslessStorageFormat": "PNG"])),
                400, "ValidationException")
            let listed = try Self.json(try await client.execute(uri: "/datastore?maxResults=1", method: .get))
            #expect((listed["datastoreSummaries"] as? [Any])?.count == 1)
            try Self.expectError(try await client.execute(uri: "/datastore/\(String(repeating: "0", count: 32))", method: .get), 404, "ResourceNotFoundException")
            try Self.expectError(try await client.execute(uri: "/datastore/BAD", method: .get), 400, "ValidationException")
            try Self.expectError(try await client.execute(uri: "/datastore?maxResults=99", method: .get), 400, "ValidationException")
            let deleted = try Self.json(try await client.execute(uri: "/datastore/\(id)", method: .delete))
            #expect(deleted["datastoreStatus"] as? String == "DELETING")
            try Self.expectError(try await client.execute(uri: "/datastore/\(id)", method: .get), 404, "ResourceNotFoundException")
        }
    }

    func startBody(_ harness: Harness, token: String = UUID().uuidString, input: String? = nil) -> [String: Any] {
        [
            "jobName": "job", "dataAccessRoleArn": "arn:aws:iam::123456789012:role/Importer", "clientToken": token,
            "inputS3Uri": input ?? URL(fileURLWithPath: harness.folder.sub("input")).absoluteString,
            "outputS3Uri": URL(fileURLWithPath: harness.folder.sub("output")).absoluteString,
        ]
    }

    @Test func importJobAndImageSetOperationsEndToEnd() async throws {
        let harness = try Harness()
        defer { harness.folder.remove() }
        let study = "1.2.826.0.1.3680043.10.88"
        var instance = SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.1")
        instance.frames = 2
        try instance.write(to: harness.folder.sub("input/1.dcm"))
        try SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.2").write(to: harness.folder.sub("input/2.dcm"))
        let token = UUID().uuidString
        let body = try Self.body(startBody(harness, token: token))
        var changedObject = startBody(harness, token: token)
        changedObject["outputS3Uri"] = URL(fileURLWithPath: harness.folder.sub("elsewhere")).absoluteString
        let changed = try Self.body(changedObject)
        try await harness.test { client in
            let id = try await Self.createDatastore(client)
            let started = try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: body)
            #expect(started.status == .ok)
            let start = try Self.json(started)
            #expect(start["jobStatus"] as? String == "SUBMITTED")
            let jobId = try #require(start["jobId"] as? String)
            // The same clientToken with the same parameters returns the same job.
            let again = try Self.json(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: body))
            #expect(again["jobId"] as? String == jobId)
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: changed), 409, "ConflictException")

            harness.runner.waitUntilIdle()
            let job = try Self.json(try await client.execute(uri: "/getDICOMImportJob/datastore/\(id)/job/\(jobId)", method: .get))
            let properties = try #require(job["jobProperties"] as? [String: Any])
            #expect(properties["jobStatus"] as? String == "COMPLETED")
            #expect(properties["endedAt"] != nil)
            // Our extension: the job's counts, named as in its manifest.
            let summary = try #require(properties["jobSummary"] as? [String: Any])
            #expect(summary["numberOfScannedFiles"] as? Int == 2)
            #expect(summary["numberOfImportedFiles"] as? Int == 2)
            #expect(summary["numberOfFilesWithCustomerError"] as? Int == 0)
            #expect(summary["numberOfGeneratedImageSets"] as? Int == 1)
            #expect((summary["numberOfBytesRead"] as? Int ?? 0) > 0)
            let jobs = try Self.json(try await client.execute(uri: "/listDICOMImportJobs/datastore/\(id)?jobStatus=COMPLETED", method: .get))
            #expect((jobs["jobSummaries"] as? [Any])?.count == 1)
            try Self.expectError(try await client.execute(uri: "/getDICOMImportJob/datastore/\(id)/job/ffff", method: .get), 404, "ResourceNotFoundException")

            let search = try Self.json(try await client.execute(
                uri: "/datastore/\(id)/searchImageSets?maxResults=10", method: .post,
                body: try Self.body(["filters": [["operator": "EQUAL", "values": [["DICOMStudyInstanceUID": study]]]], "sort": ["sortOrder": "ASC", "sortField": "createdAt"]])))
            let summaries = try #require(search["imageSetsMetadataSummaries"] as? [[String: Any]])
            #expect(summaries.count == 1)
            let imageSetId = try #require(summaries.first?["imageSetId"] as? String)
            #expect((summaries.first?["DICOMTags"] as? [String: Any])?["DICOMSeriesInstanceUID"] as? String == study + ".1")
            // Page tokens are opaque; one that does not decode is a ValidationException.
            try Self.expectError(
                try await client.execute(
                    uri: "/datastore/\(id)/searchImageSets?nextToken=garbage", method: .post, body: try Self.body([:] as [String: Any])),
                400, "ValidationException")
            try Self.expectError(
                try await client.execute(uri: "/listDICOMImportJobs/datastore/\(id)?nextToken=12", method: .get),
                400, "ValidationException")
            let none = try Self.json(try await client.execute(
                uri: "/datastore/\(id)/searchImageSets", method: .post,
                body: try Self.body(["filters": [["operator": "EQUAL", "values": [["DICOMPatientId": "nobody"]]]]])))
            #expect((none["imageSetsMetadataSummaries"] as? [Any])?.isEmpty == true)

            let base = "/datastore/\(id)/imageSet/\(imageSetId)"
            let imageSet = try Self.json(try await client.execute(uri: "\(base)/getImageSet", method: .post))
            #expect(imageSet["versionId"] as? String == "1")
            #expect(imageSet["imageSetState"] as? String == "ACTIVE")
            #expect(imageSet["isPrimary"] as? Bool == true)

            let metadata = try await client.execute(uri: "\(base)/getImageSetMetadata", method: .post)
            #expect(metadata.headers[.contentEncoding] == "gzip")
            #expect(metadata.headers[.contentType] == "application/json")
            let document = try #require(Compression.gunzip(Array(buffer: metadata.body)))
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(document)) as? [String: Any])
            #expect(parsed["ImageSetID"] as? String == imageSetId)
            let text = String(decoding: document, as: UTF8.self)
            let frameId = try #require(text.components(separatedBy: "\"ID\":\"").dropFirst().first.map { String($0.prefix(32)) })
            let frame = try await client.execute(uri: "\(base)/getImageFrame", method: .post, body: try Self.body(["imageFrameId": frameId]))
            #expect(frame.status == .ok)
            #expect(frame.headers[.contentType] == "image/jph")
            let codestream = Array(buffer: frame.body)
            #expect(try codestream.withUnsafeBytes { try HTJ2KCodestream(parsing: $0).conformanceProblem() } == nil)
            let description = PixelDescription(
                rows: Int(SyntheticInstance.rows), columns: Int(SyntheticInstance.columns), bitsAllocated: 16, bitsStored: 12)
            let scratch = PixelScratch()
            let decoded = try codestream.withUnsafeBytes {
                Array(try FrameProcessor.decodeStored($0, transferSyntaxUID: "1.2.840.10008.1.2.4.202", description: description, scratch: scratch))
            }
            #expect(decoded.count == Int(SyntheticInstance.rows) * Int(SyntheticInstance.columns) * 2)
            // A 4×4 frame has one resolution: level 0 is the frame itself, level 1 does not exist.
            let full = try await client.execute(uri: "\(base)/getImageFrame?resolution=0", method: .post, body: try Self.body(["imageFrameId": frameId]))
            #expect(Array(buffer: full.body) == codestream)
            try Self.expectError(try await client.execute(uri: "\(base)/getImageFrame?resolution=1", method: .post, body: try Self.body(["imageFrameId": frameId])), 400, "ValidationException")
            try Self.expectError(try await client.execute(uri: "\(base)/getImageFrame", method: .post, body: try Self.body(["imageFrameId": String(repeating: "a", count: 32)])), 404, "ResourceNotFoundException")
            try Self.expectError(try await client.execute(uri: "\(base)/getImageSetMetadata?version=5", method: .post), 404, "ResourceNotFoundException")

            let versions = try Self.json(try await client.execute(uri: "\(base)/listImageSetVersions", method: .post))
            let list = try #require(versions["imageSetPropertiesList"] as? [[String: Any]])
            #expect(list.first?["ImageSetWorkflowStatus"] as? String == "IMPORTED")

            // Tags on the image set, through the percent-encoded ARN path segment.
            let arn = try #require(imageSet["imageSetArn"] as? String)
            let encoded = SigV4Signer.uriEncode(arn)
            #expect(try await client.execute(uri: "/tags/\(encoded)", method: .post, body: try Self.body(["tags": ["project": "x", "owner": "y"]])).status == .ok)
            #expect(try await client.execute(uri: "/tags/\(encoded)?tagKeys=owner", method: .delete).status == .ok)
            let tags = try Self.json(try await client.execute(uri: "/tags/\(encoded)", method: .get))
            #expect(tags["tags"] as? [String: String] == ["project": "x"])

            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"dicom_ingest_files_total{outcome="imported"} 2"#))
            #expect(metrics.contains("dicom_ingest_jobs_total"))
            #expect(metrics.contains("dicom_ingest_http_request_duration_seconds"))

            let deleted = try Self.json(try await client.execute(uri: "\(base)/deleteImageSet", method: .post))
            #expect(deleted["imageSetState"] as? String == "DELETED")
            try Self.expectError(try await client.execute(uri: "\(base)/getImageSet", method: .post), 404, "ResourceNotFoundException")
            // The frames of a deleted image set are gone with it.
            try Self.expectError(
                try await client.execute(uri: "\(base)/getImageFrame", method: .post, body: try Self.body(["imageFrameId": frameId])),
                404, "ResourceNotFoundException")
        }
    }

    @Test func startJobErrors() async throws {
        let configuration = ServerConfiguration(
            roles: [
                "arn:aws:iam::123456789012:role/Narrow": .init(readPrefixes: ["file:///allowed/"], writePrefixes: nil),
                "*": .init(),
            ],
            maxConcurrentJobsPerDatastore: 100, startJobRate: 0.001)
        let harness = try Harness(configuration: configuration)
        defer { harness.folder.remove() }
        try await harness.test { client in
            let id = try await Self.createDatastore(client)
            var missing = startBody(harness)
            missing.removeValue(forKey: "inputS3Uri")
            let missingResponse = try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(missing))
            try Self.expectError(missingResponse, 400, "ValidationException")
            #expect((try Self.json(missingResponse)["message"] as? String)?.contains("inputS3Uri") == true)
            var badToken = startBody(harness)
            badToken["clientToken"] = "not valid!"
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(badToken)), 400, "ValidationException")
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(String(repeating: "1", count: 32))", method: .post, body: try Self.body(startBody(harness))), 404, "ResourceNotFoundException")
            var narrow = startBody(harness)
            narrow["dataAccessRoleArn"] = "arn:aws:iam::123456789012:role/Narrow"
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(narrow)), 403, "AccessDeniedException")
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(["not": "json object of the right shape"])), 400, "ValidationException")
            // The bucket holds 2 tokens at this rate (burst ≥ 1): use them up, then expect throttling.
            var throttled = false
            for _ in 0..<4 {
                let response = try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(startBody(harness)))
                if response.status.code == 429 {
                    try Self.expectError(response, 429, "ThrottlingException")
                    throttled = true
                }
            }
            #expect(throttled)
            harness.runner.waitUntilIdle()
        }
        let quota = try Harness(configuration: ServerConfiguration(maxConcurrentJobsPerDatastore: 0))
        defer { quota.folder.remove() }
        try await quota.test { client in
            let id = try await Self.createDatastore(client)
            try Self.expectError(try await client.execute(uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(startBody(quota))), 402, "ServiceQuotaExceededException")
        }
    }

    @Test func verifiesSigV4Signatures() async throws {
        let harness = try Harness(configuration: ServerConfiguration(identities: ["AKIDTEST": .init(secretAccessKey: "secret")]))
        defer { harness.folder.remove() }
        @Sendable func signed(
            _ path: String, method: String, body: [UInt8], secret: String, service: String = "medical-imaging",
            date: Date = Date(), signHost: Bool = true
        ) -> HTTPFields {
            let signer = SigV4Signer(credentials: AWSCredentials(accessKeyId: "AKIDTEST", secretAccessKey: secret), region: "us-east-1", service: service)
            var headers = signHost ? [("host", "localhost")] : []
            if !body.isEmpty { headers.append(("content-type", "application/json")) }
            let added = signer.sign(
                .init(method: method, encodedPath: SigV4Signer.uriEncode(path, keepSlash: true), query: [], headers: headers, payloadHash: SigV4Signer.hexSHA256(body)),
                date: date)
            var fields = HTTPFields()
            for (name, value) in headers + added where name != "host" { fields[HTTPField.Name(name)!] = value }
            return fields
        }
        try await harness.test { client in
            let body = Array("{\"datastoreName\":\"signed\"}".utf8)
            let accepted = try await client.execute(uri: "/datastore", method: .post, headers: signed("/datastore", method: "POST", body: body, secret: "secret"), body: ByteBuffer(bytes: body))
            #expect(accepted.status == .ok)
            try Self.expectError(try await client.execute(uri: "/datastore", method: .post, headers: signed("/datastore", method: "POST", body: body, secret: "wrong"), body: ByteBuffer(bytes: body)), 403, "AccessDeniedException")
            try Self.expectError(try await client.execute(uri: "/datastore", method: .get), 403, "AccessDeniedException")
            try Self.expectError(try await client.execute(uri: "/datastore", method: .get, headers: signed("/datastore", method: "GET", body: [], secret: "secret", service: "s3")), 403, "AccessDeniedException")
            let expired = signed("/datastore", method: "GET", body: [], secret: "secret", date: Date().addingTimeInterval(-3600))
            let stale = try await client.execute(uri: "/datastore", method: .get, headers: expired)
            try Self.expectError(stale, 403, "AccessDeniedException")
            #expect((try Self.json(stale)["message"] as? String)?.contains("expired") == true)
            let big = [UInt8](repeating: 0x20, count: 2 << 20)
            try Self.expectError(try await client.execute(uri: "/datastore", method: .post, headers: signed("/datastore", method: "POST", body: big, secret: "secret"), body: ByteBuffer(bytes: big)), 400, "ValidationException")
            // Unauthenticated: refused on its headers, before its (too large) body is read.
            try Self.expectError(try await client.execute(uri: "/datastore", method: .post, body: ByteBuffer(bytes: big)), 403, "AccessDeniedException")
            // A signature that does not cover `host` could be replayed elsewhere.
            let hostless = try await client.execute(
                uri: "/datastore", method: .get, headers: signed("/datastore", method: "GET", body: [], secret: "secret", signHost: false))
            try Self.expectError(hostless, 403, "AccessDeniedException")
            #expect((try Self.json(hostless)["message"] as? String)?.contains("'Host' must be a 'SignedHeader'") == true)
            // The metrics are behind the same authentication.
            try Self.expectError(try await client.execute(uri: "/metrics", method: .get), 403, "AccessDeniedException")
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: signed("/metrics", method: "GET", body: [], secret: "secret"))
            #expect(metrics.status == .ok)
            #expect(String(buffer: metrics.body).contains("dicom_ingest_http_request_duration_seconds"))
        }
    }

    /// Role checks see prefixes as they resolve, not as they are spelled: `..`, percent-encoded dots, symbolic
    /// links and look-alike buckets do not get a caller past them; roles the configuration does not list are
    /// refused; local prefixes are served only under the configured roots.
    @Test func refusesPrefixesOutsideWhatTheRoleAllows() async throws {
        let folder = try TemporaryFolder("roles")
        defer { folder.remove() }
        for sub in ["allowed/sub", "secret", "out", "allowed2"] {
            try FileManager.default.createDirectory(atPath: folder.sub(sub), withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(atPath: folder.sub("allowed/link"), withDestinationPath: folder.sub("secret"))
        let base = URL(fileURLWithPath: folder.path).absoluteString
        let configuration = ServerConfiguration(
            roles: [
                "arn:aws:iam::123456789012:role/Narrow": .init(readPrefixes: [base + "allowed/"], writePrefixes: [base + "out/"]),
                "arn:aws:iam::123456789012:role/Buckets": .init(readPrefixes: ["s3://inbox/"], writePrefixes: ["s3://outbox/"]),
                "arn:aws:iam::123456789012:role/Wide": .init(),
            ],
            localRoots: [folder.path])
        let harness = try Harness(configuration: configuration)
        defer { harness.folder.remove() }
        try await harness.test { client in
            let id = try await Self.createDatastore(client)
            func start(_ role: String, _ input: String, _ output: String) async throws -> TestResponse {
                try await client.execute(
                    uri: "/startDICOMImportJob/datastore/\(id)", method: .post,
                    body: try Self.body([
                        "dataAccessRoleArn": "arn:aws:iam::123456789012:role/\(role)", "clientToken": UUID().uuidString,
                        "inputS3Uri": input, "outputS3Uri": output,
                    ]))
            }
            let refused: [(String, String, String)] = [
                ("Unknown", base + "allowed/", base + "out/"),
                ("Narrow", base + "allowed/../secret/", base + "out/"),
                ("Narrow", base + "allowed/%2E%2E/secret/", base + "out/"),
                ("Narrow", base + "allowed/link/", base + "out/"),
                ("Narrow", base + "allowed2/", base + "out/"),
                ("Narrow", base + "allowed/", base + "out/../secret/"),
                ("Buckets", "s3://inbox-evil/x/", "s3://outbox/"),
                ("Buckets", "s3://inbox/x/", "s3://outbox-evil/"),
                ("Wide", "file:///etc/", base + "out/"),
                ("Wide", base + "allowed/", "file:///tmp/"),
                ("Wide", base + "../", base + "out/"),
            ]
            for (role, input, output) in refused {
                let response = try await start(role, input, output)
                #expect(response.status.code == 403, "\(role) \(input) -> \(output): \(String(buffer: response.body))")
                #expect(response.headers[HTTPField.Name("x-amzn-ErrorType")!] == "AccessDeniedException")
            }
            #expect(try await start("Narrow", base + "allowed/sub/", base + "out/new-folder/").status == .ok)
            #expect(try await start("Wide", base + "secret/", base + "out/").status == .ok)
        }
        harness.runner.waitUntilIdle()
    }

    /// A frame larger than the piece a response holds at once comes back whole and exact.
    @Test func largeFramesAreStreamedExactly() async throws {
        let harness = try Harness()
        defer { harness.folder.remove() }
        let study = "1.2.826.0.1.3680043.10.89"
        var instance = SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.1")
        instance.matrix = 2048
        try instance.write(to: harness.folder.sub("input/large.dcm"))
        try await harness.test { client in
            let id = try await Self.createDatastore(client)
            let started = try await client.execute(
                uri: "/startDICOMImportJob/datastore/\(id)", method: .post, body: try Self.body(startBody(harness)))
            #expect(started.status == .ok)
            harness.runner.waitUntilIdle()
            let record = try #require(try harness.store.imageSets(datastoreId: id).first)
            let gzip = try #require(try harness.store.metadataDocument(datastoreId: id, imageSetId: record.imageSetId, version: nil))
            let text = String(decoding: try #require(Compression.gunzip(gzip)), as: UTF8.self)
            let frameId = try #require(text.components(separatedBy: "\"ID\":\"").dropFirst().first.map { String($0.prefix(32)) })
            let stored = try #require(try harness.store.frame(datastoreId: id, imageSetId: record.imageSetId, frameId: frameId))
            try #require(stored.length > 1 << 20, "the frame must span several pieces: \(stored.length) bytes")
            let expected = try harness.store.frameStorage.read(blob: stored.blob, offset: stored.offset, length: stored.length)
            let response = try await client.execute(
                uri: "/datastore/\(id)/imageSet/\(record.imageSetId)/getImageFrame", method: .post,
                body: try Self.body(["imageFrameId": frameId]))
            #expect(response.status == .ok)
            #expect(Array(buffer: response.body) == expected)
        }
    }
}
