import DICOMIngestModel
import Foundation

/// A SearchImageSets request as the catalog answers it (spec §1, SearchImageSets): up to two filters, one sort, a
/// page size and where the previous page ended. The catalog runs it on its indexes and pages by key (the page
/// token names the last row returned), so a page costs the same on the first or the millionth row.
public struct ImageSetQuery: Hashable, Sendable {
    public enum Field: String, Hashable, Sendable {
        case patientID = "DICOMPatientId", accessionNumber = "DICOMAccessionNumber", studyID = "DICOMStudyId"
        case studyInstanceUID = "DICOMStudyInstanceUID", seriesInstanceUID = "DICOMSeriesInstanceUID"
        case createdAt, updatedAt, studyDate = "DICOMStudyDateAndTime", isPrimary
    }

    public enum Value: Hashable, Sendable {
        case text(String)
        case time(Double)
        case flag(Bool)
    }

    /// EQUAL when `upper` is nil, else BETWEEN `lower` and `upper` inclusive.
    public struct Filter: Hashable, Sendable {
        public var field: Field
        public var lower: Value
        public var upper: Value?

        public init(field: Field, lower: Value, upper: Value? = nil) {
            self.field = field
            self.lower = lower
            self.upper = upper
        }
    }

    public enum SortField: String, Hashable, Sendable {
        case updatedAt, createdAt, studyDate = "DICOMStudyDateAndTime"
    }

    public var filters: [Filter]
    public var sortField: SortField
    public var ascending: Bool
    public var limit: Int
    /// Where the previous page ended (`ImageSetPage.nextToken`), nil for the first page.
    public var after: PageToken?

    public init(
        filters: [Filter] = [], sortField: SortField = .updatedAt, ascending: Bool = false, limit: Int = 50,
        after: PageToken? = nil
    ) {
        self.filters = filters
        self.sortField = sortField
        self.ascending = ascending
        self.limit = max(1, limit)
        self.after = after
    }
}

extension ImageSetQuery {
    /// The value DICOMStudyDateAndTime sorts and compares by: StudyDate (DA, `YYYYMMDD`) followed by StudyTime (TM)
    /// written out in full, `HHMMSS.FFFFFF` (PS3.5 §6.2: hours alone, minutes or seconds may be left out, and the
    /// fraction has up to six digits; the colons of the ACR-NEMA form are dropped), so that text order is time order.
    /// Without a time it is the date alone, which sorts before every time of that day.
    public static func studyDateTime(date: String, time: String) -> String {
        let date = date.trimmingCharacters(in: .whitespaces)
        let compact = time.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ":", with: "")
        guard !compact.isEmpty else { return date }
        let parts = compact.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let clock = String(parts[0].prefix(6))
        let fraction = parts.count > 1 ? String(parts[1].prefix(6)) : ""
        return date + clock.padding(toLength: 6, withPad: "0", startingAt: 0) + "."
            + fraction.padding(toLength: 6, withPad: "0", startingAt: 0)
    }

    /// Past every time of a day whose value is `date` alone (`~` sorts after the digits and `.`).
    public static func endOfDay(_ value: String) -> String {
        value.utf8.count <= 8 ? value + "~" : value
    }
}

extension ImageSetRecord {
    /// What SearchImageSets sorts and filters DICOMStudyDateAndTime by (`ImageSetQuery.studyDateTime`).
    public var studyDateTime: String { ImageSetQuery.studyDateTime(date: key.studyDate, time: studyTime) }
}

/// One page of a listing, and the token of the next when there is one.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextToken: PageToken?

    public init(items: [Item], nextToken: PageToken?) {
        self.items = items
        self.nextToken = nextToken
    }
}

/// Where a keyset page ended: the sort value and ID of its last row. On the wire it is opaque (base64url of a
/// small JSON array), as HealthImaging's tokens are; a token that does not decode is a ValidationException.
public struct PageToken: Hashable, Sendable {
    public enum SortValue: Hashable, Sendable {
        case text(String)
        case number(Double)
    }

    public var sortValue: SortValue
    public var id: String

    public init(sortValue: SortValue, id: String) {
        self.sortValue = sortValue
        self.id = id
    }

    public var encoded: String {
        let value: [JSONValue]
        switch sortValue {
        case .text(let text): value = [.string("t"), .string(text)]
        // The bits, not a decimal: a timestamp must come back exactly, or the page after it repeats or skips rows.
        case .number(let number): value = [.string("n"), .string(String(number.bitPattern))]
        }
        var out: [UInt8] = []
        JSONValue.array(value + [.string(id)]).write(to: &out)
        return Data(out).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public init?(encoded: String) {
        guard encoded.utf8.count <= 8192 else { return nil }
        var base64 = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any], array.count == 3,
            let kind = array[0] as? String, let id = array[2] as? String
        else { return nil }
        switch kind {
        case "t":
            guard let text = array[1] as? String else { return nil }
            sortValue = .text(text)
        case "n":
            guard let bits = (array[1] as? String).flatMap(UInt64.init), Double(bitPattern: bits).isFinite else { return nil }
            sortValue = .number(Double(bitPattern: bits))
        default:
            return nil
        }
        self.id = id
    }
}
