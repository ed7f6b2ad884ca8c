import AWSSigV4
public import CoreMetrics
public import DICOMIngest
import DICOMIngestModel
import Dispatch
import Foundation
public import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
public import Prometheus

/// Everything the HealthImaging-compatible API needs, shared by the routes.
public struct IngestService: Sendable {
    public let configuration: ServerConfiguration
    public let engine: ImportEngine
    /// Runs the jobs this server accepts; nil when worker processes sharing the catalog run them
    /// (`serve --submit-only`): jobs are then recorded for workers.
    public let runner: JobRunner?
    /// The Prometheus registry `/metrics` renders; the engine should report into `metricsFactory`.
    public let registry: PrometheusCollectorRegistry
    let startJobBucket: TokenBucket
    /// The verifier of DICOMweb's bearer tokens, when the configuration names an issuer.
    let bearerTokens: BearerTokenVerifier?

    public init(configuration: ServerConfiguration, engine: ImportEngine, runner: JobRunner?, registry: PrometheusCollectorRegistry) {
        self.configuration = configuration
        self.engine = engine
        self.runner = runner
        self.registry = registry
        self.startJobBucket = TokenBucket(rate: configuration.startJobRate, burst: max(1, configuration.startJobRate * 2))
        self.bearerTokens = configuration.bearerTokens.flatMap { try? BearerTokenVerifier(configuration: $0) }
    }

    /// Reads the bearer tokens' keys before the server answers (a JWKS file is read, a URL fetched), so that a
    /// server whose keys cannot be had fails to start instead of refusing every token.
    public func prepare() async throws {
        guard let bearer = configuration.bearerTokens else { return }
        let verifier = try bearerTokens ?? BearerTokenVerifier(configuration: bearer)
        _ = try await verifier.keys()
    }

    /// A swift-metrics factory over `registry`, for the engine's and the server's metrics.
    public static func metricsFactory(for registry: PrometheusCollectorRegistry) -> any MetricsFactory {
        PrometheusMetricsFactory(registry: registry)
    }

    var store: any ImageSetStore { engine.store }
}

/// The request context: the caller's access key id, once authenticated, and the peer's address.
public struct IngestRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var accessKeyId: String?
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        coreContext = .init(source: source)
        accessKeyId = nil
        remoteAddress = source.channel.remoteAddress
    }

    /// Whether the peer is this machine (127.0.0.0/8 or ::1).
    var isLoopback: Bool {
        guard let address = remoteAddress?.ipAddress else { return false }
        return address.hasPrefix("127.") || address == "::1" || address.hasPrefix("::ffff:127.")
    }
}

/// Builds the HTTP application: the HealthImaging REST routes (spec §1.3), routed on method and path only (so
/// `runtime-` host prefixes do not matter), behind SigV4 authentication and the AWS error shape.
public func buildApplication(service: IngestService, logger: Logger) -> some ApplicationProtocol {
    let router = Router(context: IngestRequestContext.self)
    router.add(middleware: RequestMetricsMiddleware(factory: IngestService.metricsFactory(for: service.registry)))
    router.add(middleware: CORSMiddleware(origins: service.configuration.corsOrigins))
    router.add(middleware: ErrorShapeMiddleware())
    router.add(middleware: SigV4Middleware(configuration: service.configuration, bearer: service.bearerTokens))
    // Probes for an orchestrator, unauthenticated (SigV4Middleware lets their paths through): the process
    // answers, and the catalog does.
    router.get(RouterPath(Probes.livenessPath)) { _, _ in Probes.response(ok: true, "ok") }
    router.get(RouterPath(Probes.readinessPath)) { _, _ in
        let store = service.store
        do {
            _ = try await blocking { try store.datastores(status: nil, limit: 1, after: nil).items.count }
            return Probes.response(ok: true, "ready")
        } catch {
            return Probes.response(ok: false, "catalog unavailable: \(error)")
        }
    }
    // Behind the same authentication as the API: what the metrics tell (jobs, failure reasons) is the tenants'.
    router.get("/metrics") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(bytes: service.registry.emitToBuffer())))
    }
    DatastoreRoutes(service: service).register(on: router)
    ImportJobRoutes(service: service).register(on: router)
    ImageSetRoutes(service: service).register(on: router)
    TagRoutes(service: service).register(on: router)
    DICOMwebRoutes(service: service).register(on: router)
    // What an unauthenticated client can hold is bounded: connections at once, time without a request, time to
    // send a body.
    let configuration = service.configuration
    return Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(configuration.idleTimeout * 1000)))),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "dicom-ingest",
            availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
        logger: logger)
}

/// Records every API request's latency and status (`dicom_ingest_http_request_duration_seconds`).
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = IngestRequestContext
    let factory: any MetricsFactory

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        Timer(
            label: "dicom_ingest_http_request_duration_seconds",
            dimensions: [("method", request.method.rawValue), ("route", route), ("status", String(response.status.code))],
            factory: factory
        ).recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        return response
    }
}

/// Turns every error that escapes a route into the AWS error shape; unknown errors become InternalServerException
/// without internals.
struct ErrorShapeMiddleware: RouterMiddleware {
    typealias Context = IngestRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as IngestServiceError {
            return JSONResponse.error(error)
        } catch let error as HTTPError where error.status == .notFound {
            return JSONResponse.error(.init(.resourceNotFoundException, "No operation matches \(request.method) \(request.uri.path)"))
        } catch {
            return JSONResponse.error(IngestServiceError(error))
        }
    }
}

/// Verifies each request's SigV4 signature against the configured identities (service name `medical-imaging`).
/// The headers are checked first (form, scope, access key, time, `host` signed): a request that fails them is
/// refused before its body is read. Only then is the body collected (bounded by `maxBodySize`) for the payload
/// hash and the signature.
///
/// DICOMweb reads (GET under `/datastore/{id}/studies`, `/series` or `/instances`) may instead carry an OIDC bearer token
/// (`BearerTokenVerifier`) when the configuration names an issuer, or nothing from a loopback peer when it allows
/// `unauthenticatedLoopbackReads`; everything else needs a signature.
struct SigV4Middleware: RouterMiddleware {
    typealias Context = IngestRequestContext
    let configuration: ServerConfiguration
    let bearer: BearerTokenVerifier?

    /// The data store of a DICOMweb read's path, nil for any other request.
    static func dicomwebDatastore(_ request: Request) -> String? {
        guard request.method == .get else { return nil }
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].isEmpty, parts[1] == "datastore", ["studies", "series", "instances"].contains(parts[3])
        else { return nil }
        return String(parts[2])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            guard let bearer else {
                throw IngestServiceError(.accessDeniedException, "This server takes no bearer tokens (its configuration names no oidc issuer)")
            }
            guard let datastoreId = Self.dicomwebDatastore(request) else {
                throw IngestServiceError(.accessDeniedException, "A bearer token may only read DICOMweb; sign other requests with SigV4")
            }
            let token = String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
            var context = context
            context.accessKeyId = try await bearer.authorize(token, datastoreId: datastoreId)
            _ = try await collect(&request)
            return try await next(request, context)
        }
        // Off unless configured: a viewer on this machine reads DICOMweb without credentials.
        if configuration.unauthenticatedLoopbackReads, request.headers[.authorization] == nil, context.isLoopback,
            Self.dicomwebDatastore(request) != nil
        {
            var context = context
            context.accessKeyId = "loopback"
            _ = try await collect(&request)
            return try await next(request, context)
        }
        guard !configuration.identities.isEmpty, !Probes.paths.contains(request.uri.path) else {
            _ = try await collect(&request)
            return try await next(request, context)
        }
        var headers = request.headers.map { ($0.name.canonicalName, $0.value) }
        if let authority = request.head.authority, !headers.contains(where: { $0.0 == "host" }) {
            headers.append(("host", authority))
        }
        let identities = configuration.identities
        let verifier = SigV4Verifier(service: "medical-imaging") { key in
            identities[key].map { AWSCredentials(accessKeyId: key, secretAccessKey: $0.secretAccessKey) }
        }
        do {
            let authorization = try verifier.authorize(headers: headers, now: Date())
            let body = try await collect(&request)
            let key = try verifier.verify(
                authorization, method: request.method.rawValue, rawPath: request.uri.path, rawQuery: request.uri.query,
                headers: headers, payloadHash: SigV4Signer.hexSHA256(Array(buffer: body)))
            var context = context
            context.accessKeyId = key
            return try await next(request, context)
        } catch let failure as SigV4Verifier.Failure {
            throw IngestServiceError(.accessDeniedException, failure.description)
        }
    }

    /// The body, at most `maxBodySize` bytes, within `bodyReadTimeout` seconds.
    private func collect(_ request: inout Request) async throws -> ByteBuffer {
        let (limit, timeout) = (configuration.maxBodySize, configuration.bodyReadTimeout)
        let reading = request
        let collected = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                var request = reading
                do {
                    return try await request.collectBody(upTo: limit)
                } catch {
                    throw IngestServiceError.validation("Request body larger than \(limit) bytes")
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let collected else {
            throw IngestServiceError.validation("Request body not received within \(timeout) s")
        }
        request.body = .init(buffer: collected)
        return collected
    }
}

// MARK: - Request helpers

extension Request {
    /// The JSON object body, or `{}` for an empty body.
    func jsonObject(context: IngestRequestContext) async throws -> [String: Any] {
        var request = self
        let buffer = try await request.collectBody(upTo: .max)
        guard buffer.readableBytes > 0 else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(Array(buffer: buffer))) as? [String: Any] else {
            throw IngestServiceError.validation("The request body is not a JSON object")
        }
        return object
    }

    func query(_ name: String) -> String? {
        uri.queryParameters.get(name).map { String($0).removingPercentEncoding ?? String($0) }
    }

    /// `maxResults` (1–50 in the model) and the opaque `nextToken` of a listing, every one of which is paged by key.
    func keysetPage() throws -> (limit: Int, after: PageToken?) {
        var limit = 50
        if let text = query("maxResults") {
            guard let value = Int(text), (1...50).contains(value) else {
                throw IngestServiceError.validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint")
            }
            limit = value
        }
        guard let token = query("nextToken") else { return (limit, nil) }
        guard let after = PageToken(encoded: token) else { throw IngestServiceError.validation("Invalid nextToken") }
        return (limit, after)
    }
}

extension IngestRequestContext {
    func parameter(_ name: String) throws -> String {
        guard let value = parameters.get(name) else { throw IngestServiceError.validation("Missing \(name)") }
        return value.removingPercentEncoding ?? value
    }

    func resourceId(_ name: String) throws -> String {
        let value = try parameter(name)
        guard Validation.isResourceId(value) else {
            throw IngestServiceError.validation("1 validation error detected: Value at '\(name)' failed to satisfy constraint")
        }
        return value
    }
}

func now() -> Double { Date().timeIntervalSince1970 }

/// Runs a blocking store call off the cooperative pool, on `BlockingExecutor.shared`.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        BlockingExecutor.shared.submit {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// A fixed number of threads for the server's blocking calls (catalog queries, frame reads), so that a burst of
/// requests queues instead of starting a thread each: a concurrent Dispatch queue would start up to 512 that
/// all contend for the catalog's few connections. Calls run in the order they arrive; the connection limit bounds
/// how many can wait.
final class BlockingExecutor: @unchecked Sendable {
    /// The catalog serves five readers and one writer at once; a few more threads keep it busy while some read frames.
    static let shared = BlockingExecutor(threads: 8)

    let threads: Int
    // @unchecked: `work`, `head` and `started` are only touched while holding `condition`.
    private let condition = NSCondition()
    private var work: [@Sendable () -> Void] = []
    private var head = 0
    private var started = 0
    private var idle = 0

    init(threads: Int) {
        self.threads = max(1, threads)
    }

    func submit(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        work.append(body)
        if idle > 0 {
            condition.signal()
        } else if started < threads {
            started += 1
            // Private queues overcommit: each of these is a thread of its own, kept for the life of the process.
            DispatchQueue(label: "dicom-ingest.blocking.\(started)").async { self.serve() }
        }
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            while head == work.count {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let body = work[head]
            head += 1
            if head == work.count {
                work.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            body()
        }
    }
}

/// Builds the application and serves until SIGTERM or SIGINT.
public func runServer(service: IngestService, logger: Logger) async throws {
    try await buildApplication(service: service, logger: logger).runService()
}
