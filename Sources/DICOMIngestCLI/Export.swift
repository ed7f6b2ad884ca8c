import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import Foundation

extension DICOMIngestCommand {
    /// `dicom-ingest export`: the P10 files of a study, a series or an image set, rebuilt as GetDICOMInstance
    /// rebuilds them (`P10Assembly`), written a frame at a time.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the DICOM files of a study, a series or an image set into a folder.",
            discussion: """
                Files are rebuilt from the catalog's metadata and the stored frames, as DICOMweb's GetDICOMInstance \
                answers: <folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm. A study or series \
                is what its primary image sets hold; --image-set names any image set. --transfer-syntax ele \
                (default) decodes the frames to Explicit VR Little Endian (frames that cannot be decoded stay as \
                stored); stored keeps them as stored (HTJ2K for lossless input).
                """)

        enum Syntax: String, ExpressibleByArgument, CaseIterable {
            case ele, stored
        }

        @OptionGroup var options: StoreOptions
        @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
        @Option(help: "Study Instance UID: every series of the study.") var study: String?
        @Option(help: "Series Instance UID (with --study, or alone).") var series: String?
        @Option(help: "Image set ID, primary or not.") var imageSet: String?
        @Option(help: "Transfer syntax of the files: ele or stored.") var transferSyntax: Syntax = .ele
        @Option(help: "Folder the files go into (made if missing).") var to: String
        @Flag(help: "No progress line on stderr.") var noProgress = false

        func validate() throws {
            guard (study != nil || series != nil) != (imageSet != nil) else {
                throw ValidationError("Give --study (and --series), --series, or --image-set")
            }
        }

        func run() throws {
            try reportingErrors {
                let store = try options.open()
                let datastore = try resolveDatastore(datastoreId, in: store)
                let reader = DICOMwebReader(store: store, frameStorage: try options.frameStorage(for: store))
                let records = try imageSets(store: store, datastore: datastore)
                guard !records.isEmpty else { throw CLIError(.notFound("Nothing to export: no such study, series or image set")) }
                var series: [(DICOMwebReader.Scope, [StoredInstance], ImageSetRecord)] = []
                for record in records {
                    let scope = DICOMwebReader.Scope(
                        datastoreId: datastore, studyInstanceUID: record.key.studyInstanceUID,
                        seriesInstanceUID: record.key.seriesInstanceUID, imageSetId: record.imageSetId)
                    let (_, instances) = try reader.instances(scope)
                    series.append((scope, instances, record))
                }
                let total = series.reduce(0) { $0 + $1.1.count }
                var written = 0
                var bytes = 0
                for (scope, instances, record) in series {
                    let folder = "\(to)/\(scope.studyInstanceUID)/\(scope.seriesInstanceUID)"
                    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                    for instance in instances {
                        let frames = try reader.frames(instance.frames.indices.map { $0 + 1 }, of: instance, in: record)
                        let decoded = transferSyntax == .ele && (frames.isEmpty || DICOMwebReader.servesNative(instance))
                        let assembly = try P10Assembly(reader: reader, instance: instance, frames: frames, decoded: decoded)
                        bytes += try write(assembly, to: "\(folder)/\(instance.sopInstanceUID).dcm")
                        written += 1
                        if !noProgress {
                            FileHandle.standardError.write(Data("\rexported \(written) of \(total) instances, \(bytes / 1_000_000) MB".utf8))
                        }
                    }
                }
                if !noProgress { FileHandle.standardError.write(Data("\n".utf8)) }
                print("exported \(written) instances of \(series.count) series into \(to)")
            }
        }

        /// The image sets to export: the one named, the primary one of a series, or the primary ones of a study.
        func imageSets(store: any SQLBackedImageSetStore, datastore: String) throws -> [ImageSetRecord] {
            if let imageSet {
                guard let record = try store.imageSet(datastoreId: datastore, imageSetId: imageSet), record.state != "DELETED" else {
                    throw CLIError(.notFound("Image set \(imageSet) does not exist"))
                }
                return [record]
            }
            var filters: [ImageSetQuery.Filter] = [.init(field: .isPrimary, lower: .flag(true))]
            if let study { filters.append(.init(field: .studyInstanceUID, lower: .text(study))) }
            if let series { filters.append(.init(field: .seriesInstanceUID, lower: .text(series))) }
            var records: [ImageSetRecord] = []
            var after: PageToken?
            repeat {
                let page = try store.searchImageSets(datastoreId: datastore, query: ImageSetQuery(filters: filters, limit: 50, after: after))
                records += page.items.filter { $0.state != "DELETED" }
                after = page.nextToken
            } while after != nil
            return records
        }

        /// Writes the file under a temporary name, then renames it: a file that is there is whole.
        func write(_ assembly: P10Assembly, to path: String) throws -> Int {
            let partial = path + ".partial"
            FileManager.default.createFile(atPath: partial, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: partial) else {
                throw CLIError(.internal("Cannot write \(partial)"))
            }
            var size = 0
            do {
                defer { try? handle.close() }
                try handle.write(contentsOf: assembly.header)
                size += assembly.header.count
                for index in assembly.frames.indices {
                    let piece = try assembly.piece(index)
                    try handle.write(contentsOf: piece)
                    size += piece.count
                }
                try handle.write(contentsOf: assembly.trailer)
                try handle.synchronize()
            }
            _ = try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: partial, toPath: path)
            return size + assembly.trailer.count
        }
    }
}
