import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import DICOMPixels
import Foundation

extension DICOMIngestCommand {
    struct ImageSet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image-set",
            abstract: "List image sets, show one, print its metadata document, get a frame, update its metadata.",
            subcommands: [List.self, Get.self, Metadata.self, Frame.self, Update.self, Copy.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List image sets, most recently updated first (SearchImageSets without filters), a page at a time.")
            @OptionGroup var options: StoreOptions
            @OptionGroup var page: PageOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    let found = try store.searchImageSets(
                        datastoreId: datastore, query: ImageSetQuery(limit: page.maxResults, after: try page.after()))
                    page.print(found, as: "imageSetsMetadataSummaries", \.summaryJSON)
                }
            }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show an image set (GetImageSet).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Argument(help: "Image set ID.") var imageSetId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let record = try store.imageSet(datastoreId: datastore, imageSetId: imageSetId) else {
                        throw CLIError(.notFound("Image set \(imageSetId) does not exist"))
                    }
                    printJSON(record.propertiesJSON(version: record.latestVersion, arn: ResourceARN().imageSet(datastore, record.imageSetId)))
                }
            }
        }

        struct Metadata: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print an image set's metadata document (GetImageSetMetadata, gunzipped).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(help: "Version (default: the latest).") var version: Int?
            @Argument(help: "Image set ID.") var imageSetId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let gzip = try store.metadataDocument(datastoreId: datastore, imageSetId: imageSetId, version: version),
                        let document = Compression.gunzip(gzip)
                    else {
                        throw CLIError(.notFound("Image set \(imageSetId) has no version \(version.map(String.init) ?? "")"))
                    }
                    FileHandle.standardOutput.write(Data(document + [0x0A]))
                }
            }
        }
    
        struct Update: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Update an image set's metadata, or bring back an earlier version (UpdateImageSetMetadata).",
                discussion: """
                    The update files are JSON in the metadata document's shape, as HealthImaging takes them
                    (decoded, not base64): {"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"A^B"}}}; to remove an
                    instance, give it as {} under Study.Series.<series>.Instances in the removable file.
                    """)
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(help: "The image set's latest version, as the caller last saw it.") var latestVersion: Int
            @Option(help: "JSON file of attributes to set.") var updatable: String?
            @Option(help: "JSON file of attributes (and instances) to remove.") var removable: String?
            @Option(help: "Make a new version that is a copy of this earlier one.") var revertTo: Int?
            @Flag(help: "Allow changes to StudyInstanceUID and StudyID.") var force = false
            @Flag(help: "Apply the study-level changes to the other image sets of the study too (a new version each).") var includeStudyImageSets = false
            @Argument(help: "Image set ID.") var imageSetId: String

            func validate() throws {
                guard (revertTo == nil) != (updatable == nil && removable == nil) else {
                    throw ValidationError("give --updatable and/or --removable, or --revert-to")
                }
            }

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let record = try store.imageSet(datastoreId: datastore, imageSetId: imageSetId), record.state != "DELETED" else {
                        throw CLIError(.notFound("Image set \(imageSetId) does not exist"))
                    }
                    func read(_ path: String?) throws -> [UInt8]? {
                        guard let path else { return nil }
                        guard let data = FileManager.default.contents(atPath: path) else {
                            throw CLIError(.validation("Cannot read \(path)"))
                        }
                        return [UInt8](data)
                    }
                    let update: ImageSetUpdate
                    if let revertTo {
                        update = .revert(toVersion: revertTo)
                    } else {
                        var changes = try MetadataChanges.parse(
                            updatable: try read(updatable), removable: try read(removable),
                            seriesInstanceUID: record.key.seriesInstanceUID, force: force)
                        changes.includeStudyImageSets = includeStudyImageSets
                        update = .changes(changes)
                    }
                    let updated = try store.updateImageSetMetadata(
                        datastoreId: datastore, imageSetId: imageSetId, latestVersion: latestVersion, update: update,
                        now: Date().timeIntervalSince1970)
                    printJSON(updated.propertiesJSON(version: updated.latestVersion, arn: ResourceARN().imageSet(datastore, updated.imageSetId)))
                }
            }
        }

        struct Copy: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Copy an image set's instances into a new image set or a new version of another (CopyImageSet).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(help: "The source's latest version, as the caller last saw it.") var latestVersion: Int
            @Option(help: "SOP Instance UIDs to copy, comma-separated (default: all).") var instances: String?
            @Option(help: "Image set to add a version to (default: a new image set).") var destination: String?
            @Option(help: "The destination's latest version.") var destinationVersion: Int?
            @Flag(help: "Copy even when patient, study or series metadata differ from the destination's.") var force = false
            @Flag(help: "Make the new image set the series' primary one.") var promoteToPrimary = false
            @Argument(help: "Source image set ID.") var imageSetId: String

            func validate() throws {
                guard (destination == nil) == (destinationVersion == nil) else {
                    throw ValidationError("--destination and --destination-version go together")
                }
            }

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    let (_, copied) = try store.copyImageSet(
                        datastoreId: datastore,
                        copy: ImageSetCopy(
                            sourceImageSetId: imageSetId, sourceLatestVersion: latestVersion,
                            instances: instances.map { $0.split(separator: ",").map(String.init) },
                            destination: destination.map { .init(imageSetId: $0, latestVersion: destinationVersion ?? 0) },
                            force: force, promoteToPrimary: promoteToPrimary),
                        now: Date().timeIntervalSince1970)
                    printJSON(copied.propertiesJSON(version: copied.latestVersion, arn: ResourceARN().imageSet(datastore, copied.imageSetId)))
                }
            }
        }

        struct Frame: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Get a stored frame (GetImageFrame): the codestream, a lower resolution of it, or a PNG.")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(name: .shortAndLong, help: "Write to FILE instead of stdout.") var output: String?
            @Flag(help: "Render an 8-bit PNG (modality LUT, then the first window, else min/max).") var png = false
            @Option(help: "Resolution level: 0 is full, each level halves width and height (HTJ2K: a prefix of the tile-parts).")
            var resolution: Int = 0
            @Argument(help: "Image set ID.") var imageSetId: String
            @Argument(help: "Image frame ID.") var frameId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let gzip = try store.metadataDocument(datastoreId: datastore, imageSetId: imageSetId, version: nil),
                        let text = Compression.gunzip(gzip), let document = try? JSONValue.parse(text),
                        let instance = StoredInstance.holding(frameId: frameId, in: document),
                        let frame = try store.frame(datastoreId: datastore, imageSetId: imageSetId, frameId: frameId)
                    else {
                        throw CLIError(.notFound("Image frame \(frameId) does not exist in image set \(imageSetId)"))
                    }
                    let stored = try options.frameStorage(for: store).read(blob: frame.blob, offset: frame.offset, length: frame.length)
                    let bytes: [UInt8]
                    do {
                        bytes = try FrameOutput(
                            stored: stored, transferSyntaxUID: frame.transferSyntaxUID, instance: instance,
                            resolution: resolution, png: png
                        ).bytes()
                    } catch let error as PixelError {
                        throw CLIError(.validation(error.message))
                    }
                    if let output {
                        try Data(bytes).write(to: URL(fileURLWithPath: output))
                    } else {
                        FileHandle.standardOutput.write(Data(bytes))
                    }
                }
            }
        }
    }
}

/// What `image-set frame` writes: the stored codestream, its lower-resolution prefix, or a PNG.
struct FrameOutput {
    var stored: [UInt8]
    var transferSyntaxUID: String
    var instance: StoredInstance
    var resolution: Int
    var png: Bool

    func bytes() throws -> [UInt8] {
        let description = instance.pixelDescription
        guard resolution >= 0, resolution <= description.decompositions || resolution == 0 else {
            throw PixelError(.unsupported, "resolution \(resolution) is outside 0...\(description.decompositions)")
        }
        if png {
            let decoded = try FrameRendering.decodeStored(
                stored, transferSyntaxUID: transferSyntaxUID, description: description, skipResolutions: resolution)
            let window = instance.decimal("WindowCenter").flatMap { center in
                instance.decimal("WindowWidth").map { FrameRendering.Window(center: center, width: $0) }
            }
            return FrameRendering.png(
                decoded, description: description, rescaleSlope: instance.decimal("RescaleSlope") ?? 1,
                rescaleIntercept: instance.decimal("RescaleIntercept") ?? 0, window: window)
        }
        guard resolution > 0 else { return stored }
        return try HTJ2KCodestream.lowerResolution(stored, transferSyntaxUID: transferSyntaxUID, skipResolutions: resolution)
    }
}
