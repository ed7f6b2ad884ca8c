/// The attributes that decide which image set an instance belongs to (spec §4.1): the study-level Study Date,
/// Accession Number, Patient ID, Study Instance UID and Study ID, the series-level Series Instance UID and
/// Series Number, and (our decision, as the import issue asks) Patient Name. Values are compared after trimming
/// DICOM padding; an absent attribute is the empty string.
public struct ImageSetKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var patientID: String
    public var patientName: String
    public var studyDate: String
    public var accessionNumber: String
    public var studyID: String
    public var seriesNumber: String

    public init(
        studyInstanceUID: String,
        seriesInstanceUID: String,
        patientID: String = "",
        patientName: String = "",
        studyDate: String = "",
        accessionNumber: String = "",
        studyID: String = "",
        seriesNumber: String = ""
    ) {
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.patientID = patientID
        self.patientName = patientName
        self.studyDate = studyDate
        self.accessionNumber = accessionNumber
        self.studyID = studyID
        self.seriesNumber = seriesNumber
    }

    var fields: [String] {
        [studyInstanceUID, seriesInstanceUID, patientID, patientName, studyDate, accessionNumber, studyID, seriesNumber]
    }

    /// A stable text form for storage and comparison (fields joined by U+001F, which DICOM text cannot hold).
    public var encoded: String { fields.joined(separator: "\u{1F}") }

    public init?(encoded: String) {
        let parts = encoded.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 8 else { return nil }
        self.init(
            studyInstanceUID: parts[0], seriesInstanceUID: parts[1], patientID: parts[2], patientName: parts[3],
            studyDate: parts[4], accessionNumber: parts[5], studyID: parts[6], seriesNumber: parts[7])
    }

    public static func < (lhs: ImageSetKey, rhs: ImageSetKey) -> Bool { lhs.fields.lexicographicallyPrecedes(rhs.fields) }

    public var description: String {
        "PatientID=\(patientID) PatientName=\(patientName) StudyDate=\(studyDate) AccessionNumber=\(accessionNumber) StudyID=\(studyID) SeriesNumber=\(seriesNumber)"
    }

    /// Names of the key attributes in which `self` differs from `other`, for messages.
    public func differences(from other: ImageSetKey) -> [String] {
        let names = [
            "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber", "StudyID",
            "SeriesNumber",
        ]
        return zip(names, zip(fields, other.fields)).filter { $0.1.0 != $0.1.1 }.map(\.0)
    }
}
