import DICOMIngest
import DICOMIngestModel
import Foundation
import Hummingbird
import NIOCore

// MARK: - Data stores

struct DatastoreRoutes {
    let service: IngestService

    func register(on router: Router<IngestRequestContext>) {
        router.post("/datastore") { request, context in try await create(request, context) }
        router.get("/datastore") { request, _ in try await list(request) }
        router.get("/datastore/{datastoreId}") { _, context in try await get(context) }
        router.delete("/datastore/{datastoreId}") { _, context in try await delete(context) }
    }

    func properties(_ datastore: DatastoreProperties) -> JSONValue {
        datastore.json(arn: service.configuration.arn)
    }

    func create(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let body = try await request.jsonObject(context: context)
        let name = body["datastoreName"] as? String ?? "default"
        guard Validation.isJobName(name, maxLength: 256) else {
            throw IngestServiceError.validation("1 validation error detected: Value at 'datastoreName' failed to satisfy constraint")
        }
        let requestedFormat = body["losslessStorageFormat"]
        guard let format = requestedFormat == nil ? .htj2k : (requestedFormat as? String).flatMap(LosslessStorageFormat.init) else {
            throw IngestServiceError.validation(
                "1 validation error detected: Value at 'losslessStorageFormat' failed to satisfy constraint: Member must satisfy enum value set: [HTJ2K, JPEG_2000_LOSSLESS]")
        }
        let store = service.store
        let created = try await blocking { try store.createDatastore(name: name, losslessStorageFormat: format, now: now()) }
        if let tags = body["tags"] as? [String: String], !tags.isEmpty {
            let arn = service.configuration.arn.datastore(created.datastoreId)
            try await blocking { try store.tagResource(resourceArn: arn, tags: tags) }
        }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(created.datastoreId)), ("datastoreStatus", .string(created.datastoreStatus.rawValue)),
        ]))
    }

    func list(_ request: Request) async throws -> Response {
        let (limit, after) = try request.keysetPage()
        let text = request.query("datastoreStatus")
        let status = text.flatMap(DatastoreStatus.init(rawValue:))
        if text != nil && status == nil {
            throw IngestServiceError.validation("1 validation error detected: Value at 'datastoreStatus' failed to satisfy enum value set")
        }
        let store = service.store
        let page = try await blocking { try store.datastores(status: status, limit: limit, after: after) }
        var members: [(String, JSONValue)] = [("datastoreSummaries", .array(page.items.map(properties)))]
        if let next = page.nextToken { members.append(("nextToken", .string(next.encoded))) }
        return JSONResponse.ok(.object(members))
    }

    func get(_ context: IngestRequestContext) async throws -> Response {
        let id = try context.resourceId("datastoreId")
        let store = service.store
        guard let found = try await blocking({ try store.datastore(id: id) }), found.datastoreStatus != .deleted else {
            throw IngestServiceError.notFound("Data store \(id) does not exist")
        }
        return JSONResponse.ok(.object([("datastoreProperties", properties(found))]))
    }

    func delete(_ context: IngestRequestContext) async throws -> Response {
        let id = try context.resourceId("datastoreId")
        let store = service.store
        let deleted = try await blocking { try store.deleteDatastore(id: id, now: now()) }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(deleted.datastoreId)), ("datastoreStatus", .string(deleted.datastoreStatus.rawValue)),
        ]))
    }
}

// MARK: - Import jobs

struct ImportJobRoutes {
    let service: IngestService

    func register(on router: Router<IngestRequestContext>) {
        router.post("/startDICOMImportJob/datastore/{datastoreId}") { request, context in try await start(request, context) }
        router.get("/getDICOMImportJob/datastore/{datastoreId}/job/{jobId}") { _, context in try await get(context) }
        router.get("/listDICOMImportJobs/datastore/{datastoreId}") { request, context in try await list(request, context) }
    }

    func start(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let body = try await request.jsonObject(context: context)
        func field(_ name: String) throws -> String {
            guard let value = body[name] as? String else {
                throw IngestServiceError.validation("1 validation error detected: Value at '\(name)' failed to satisfy constraint: Member must not be null")
            }
            return value
        }
        let startRequest = StartDICOMImportJobRequest(
            datastoreId: datastoreId, jobName: body["jobName"] as? String,
            dataAccessRoleArn: try field("dataAccessRoleArn"), clientToken: try field("clientToken"),
            inputS3Uri: try field("inputS3Uri"), outputS3Uri: try field("outputS3Uri"),
            inputOwnerAccountId: body["inputOwnerAccountId"] as? String)
        try startRequest.validate()
        try authorize(startRequest, accessKeyId: context.accessKeyId)
        guard service.startJobBucket.take() else {
            throw IngestServiceError(.throttlingException, "Rate exceeded for StartDICOMImportJob")
        }
        let engine = service.engine
        let quota = service.configuration.maxConcurrentJobsPerDatastore
        let onWorkers = service.runner == nil
        let job = try await blocking { try engine.submit(startRequest, maxActiveJobs: quota, onWorkers: onWorkers) }
        if let runner = service.runner, job.jobStatus == .submitted, job.endedAt == nil {
            let store = service.store
            let current = try await blocking { try store.job(datastoreId: datastoreId, jobId: job.jobId) }
            // A repeated clientToken returns the original job, which is already running or done.
            if current?.jobStatus == .submitted && !runner.isTracking(job.jobId) {
                runner.start(job)
            }
        }
        return JSONResponse.ok(.object([
            ("datastoreId", .string(job.datastoreId)), ("jobId", .string(job.jobId)),
            ("jobStatus", .string(job.jobStatus.rawValue)), ("submittedAt", .double(job.submittedAt)),
        ]))
    }

    /// The caller may pass the role, the role is one the configuration knows, and it may read the input and
    /// write the output (spec §6). Prefixes are compared as `NormalizedPrefix`es (decoded, `..` and links
    /// resolved), never as the strings the caller sent; local ones only under the configured `localRoots`.
    func authorize(_ request: StartDICOMImportJobRequest, accessKeyId: String?) throws {
        let configuration = service.configuration
        let roleArn = request.dataAccessRoleArn
        if let key = accessKeyId, let allowed = configuration.identities[key]?.allowedRoles, !allowed.contains(roleArn) {
            throw IngestServiceError(.accessDeniedException, "Caller \(key) may not pass role \(roleArn)")
        }
        guard let role = configuration.roles[roleArn] ?? configuration.roles["*"] else {
            throw IngestServiceError(.accessDeniedException, "Role \(roleArn) is not one this server's configuration allows")
        }
        func allowedPrefixes(_ uris: [String]) -> [NormalizedPrefix] { uris.compactMap { try? NormalizedPrefix(uri: $0) } }
        let localRoots = configuration.localRoots.map { NormalizedPrefix.local(path: NormalizedPrefix.resolve($0)) }
        for (uri, allowed, action) in [(request.inputS3Uri, role.readPrefixes, "read"), (request.outputS3Uri, role.writePrefixes, "write")] {
            let prefix = try NormalizedPrefix(uri: uri)
            if case .local = prefix, !localRoots.contains(where: prefix.isWithin) {
                throw IngestServiceError(.accessDeniedException, "This server does not \(action) local prefixes outside its configured roots: \(uri)")
            }
            if let allowed, !allowedPrefixes(allowed).contains(where: prefix.isWithin) {
                throw IngestServiceError(.accessDeniedException, "Role \(roleArn) may not \(action) \(uri)")
            }
        }
    }

    func get(_ context: IngestRequestContext) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let jobId = try context.parameter("jobId")
        guard Validation.isJobId(jobId) else { throw IngestServiceError.validation("1 validation error detected: Value at 'jobId' failed to satisfy constraint") }
        let store = service.store
        guard try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Data store \(datastoreId) does not exist")
        }
        guard var job = try await blocking({ try store.job(datastoreId: datastoreId, jobId: jobId) }) else {
            throw IngestServiceError.notFound("Job \(jobId) does not exist")
        }
        // A job running here has counted more than its record holds (updated per staged batch and committed series).
        if job.jobStatus == .inProgress, let live = service.engine.progress(of: jobId) { job.progress = live }
        return JSONResponse.ok(.object([("jobProperties", job.json)]))
    }

    func list(_ request: Request, _ context: IngestRequestContext) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let (limit, after) = try request.keysetPage()
        let text = request.query("jobStatus")
        let status = text.flatMap(JobStatus.init(rawValue:))
        if text != nil && status == nil {
            throw IngestServiceError.validation("1 validation error detected: Value at 'jobStatus' failed to satisfy enum value set")
        }
        let store = service.store
        guard try await blocking({ try store.datastore(id: datastoreId) }) != nil else {
            throw IngestServiceError.notFound("Data store \(datastoreId) does not exist")
        }
        let page = try await blocking { try store.jobs(datastoreId: datastoreId, status: status, limit: limit, after: after) }
        var members: [(String, JSONValue)] = [("jobSummaries", .array(page.items.map(\.summaryJSON)))]
        if let next = page.nextToken { members.append(("nextToken", .string(next.encoded))) }
        return JSONResponse.ok(.object(members))
    }
}
