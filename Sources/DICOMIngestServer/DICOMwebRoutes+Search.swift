import DICOMIngest
import DICOMIngestModel
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// QIDO-RS (PS3.18 §10.6) at HealthImaging's six search paths (`../shared/spec/dicomweb.md` §3).
extension DICOMwebRoutes {
    /// The longest query string a search takes.
    static let maximumQueryBytes = 16_384

    /// One search: the matches as a DICOM JSON array (`[]` when none: 200, not 204, so that every client reads
    /// the same shape), with a `Warning` header naming what the query asked that was ignored (PS3.18 §8.3.5.1).
    func search(
        _ level: SearchLevel, _ request: Request, _ context: IngestRequestContext, study: String? = nil, series: String? = nil
    ) async throws -> Response {
        let datastoreId = try context.resourceId("datastoreId")
        let query = try DICOMwebQuery.parse(
            level: level, study: study, series: series, parameters: try Self.queryParameters(request.uri.query))
        let store = service.store
        let matches = try await blocking { try store.searchDICOMweb(datastoreId: datastoreId, query: query) }
        let body = DICOMwebSearch.answer(matches, query: query, baseURI: datastoreURI(request, datastoreId))
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        if !query.ignored.isEmpty, let warning = HTTPField.Name("Warning") {
            let list = query.ignored.prefix(20).joined(separator: ", ").filter { $0.isASCII && $0 != "\"" && !$0.isNewline }
            headers[warning] = "299 dicom-ingest \"Ignored: \(list)\""
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// A query string's parameters in order, names and values decoded (`+` as a space, then `%XX`), as
    /// `application/x-www-form-urlencoded` writes them.
    static func queryParameters(_ query: String?) throws -> [(String, String)] {
        guard let query, !query.isEmpty else { return [] }
        guard query.utf8.count <= maximumQueryBytes else {
            throw IngestServiceError.validation("The query string is longer than \(maximumQueryBytes) bytes")
        }
        return try query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ text: Substring) throws -> String {
                guard let value = String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw IngestServiceError.validation("The query parameter \"\(pair.prefix(64))\" is not percent-encoded UTF-8")
                }
                return value
            }
            return (try decoded(parts[0]), parts.count > 1 ? try decoded(parts[1]) : "")
        }
    }
}
