// `ldm serve` started on a free loopback port with the tiny model and driven over HTTP, as an
// AUTOMATIC1111 client drives it: every route, authentication, same-seed images equal to
// `ldm txt2img`'s, inpainting that keeps unmasked pixels, progress and interrupt during a job,
// bad inputs answered 4xx while the server keeps serving, concurrent clients.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import LDMIO

/// A running `ldm serve`, stopped when released.
final class ServerProcess {
    let process = Process()
    let url: URL
    let stderrPipe = Pipe()
    let data: URL

    init(_ extra: [String] = [], data: URL? = nil) throws {
        self.data = try data ?? temporaryFolder()
        process.executableURL = productsFolder.appendingPathComponent("ldm")
        process.arguments = ["serve", "--model", fixtures.appendingPathComponent("models/tiny-sd").path, "--port", "0",
                             "--data-dir", self.data.path] + extra
        process.currentDirectoryURL = repositoryRoot
        let out = Pipe()
        process.standardOutput = out
        process.standardError = stderrPipe
        try process.run()
        // The first stdout line says where it listens.
        var line = Data()
        let deadline = Date().addingTimeInterval(60)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) else {
            process.terminate()
            throw NSError(domain: "serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "the server did not start: \(text)"])
        }
        url = URL(string: String(text[range]))!
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }
}

struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: Data
    var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
}

/// One HTTP request, waited for.
func http(_ method: String, _ url: URL, json: Any? = nil, raw: Data? = nil, auth: String? = nil, timeout: TimeInterval = 120) throws -> HTTPResult {
    var request = URLRequest(url: url, timeoutInterval: timeout)
    request.httpMethod = method
    if let json { request.httpBody = try JSONSerialization.data(withJSONObject: json); request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
    if let raw { request.httpBody = raw }
    if let auth { request.setValue("Basic " + Data(auth.utf8).base64EncodedString(), forHTTPHeaderField: "Authorization") }
    let done = DispatchSemaphore(value: 0)
    final class Box: @unchecked Sendable { var result: HTTPResult?; var error: Error? }
    let box = Box()
    URLSession.shared.dataTask(with: request) { data, response, error in
        if let r = response as? HTTPURLResponse {
            var headers: [String: String] = [:]
            for (k, v) in r.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
            box.result = HTTPResult(status: r.statusCode, headers: headers, body: data ?? Data())
        }
        box.error = error
        done.signal()
    }.resume()
    done.wait()
    if let result = box.result { return result }
    throw box.error ?? NSError(domain: "http", code: 0)
}

final class ServeTests: XCTestCase {
    let prompt = "a red circle above a blue square"
    var pipelines: URL { fixtures.appendingPathComponent("pipelines") }

    func api(_ server: ServerProcess, _ path: String) -> URL { server.url.appendingPathComponent("sdapi/v1/" + path) }

    func testEveryRouteAnswers() throws {
        let server = try ServerProcess()
        let lists = ["sd-models", "samplers", "schedulers", "upscalers", "latent-upscale-modes", "sd-vae", "loras", "scripts"]
        for path in lists {
            let r = try http("GET", api(server, path))
            XCTAssertEqual(r.status, 200, path)
            XCTAssertNotNil(r.json, path)
        }
        let models = try XCTUnwrap(try http("GET", api(server, "sd-models")).json as? [[String: Any]])
        XCTAssertEqual(models.first?["title"] as? String, "tiny-sd")
        let samplers = try XCTUnwrap(try http("GET", api(server, "samplers")).json as? [[String: Any]]).compactMap { $0["name"] as? String }
        for name in ["Euler a", "Euler", "DPM++ 2M", "DDIM", "PLMS", "UniPC", "LMS", "Heun"] { XCTAssertTrue(samplers.contains(name), name) }
        XCTAssertEqual(try http("GET", api(server, "options")).object["sd_model_checkpoint"] as? String, "tiny-sd")
        XCTAssertEqual(try http("POST", api(server, "options"), json: ["sd_model_checkpoint": "tiny-sd"]).status, 200)
        XCTAssertEqual(try http("POST", api(server, "options"), json: ["sd_model_checkpoint": "/etc/passwd"]).status, 422)
        for path in ["embeddings", "progress", "cmd-flags", "memory"] {
            let r = try http("GET", api(server, path))
            XCTAssertEqual(r.status, 200, path)
            XCTAssertFalse(r.object.isEmpty, path)
        }
        XCTAssertEqual(try http("GET", api(server, "progress")).object["progress"] as? Double, 0)
        XCTAssertEqual(try http("POST", api(server, "interrupt")).status, 200)
        XCTAssertEqual(try http("POST", api(server, "skip")).status, 200)
        let page = try http("GET", server.url)
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(String(decoding: page.body, as: UTF8.self).contains("<html"))
        XCTAssertEqual(try http("GET", server.url.appendingPathComponent("sdapi/v1/nothing")).status, 404)
    }

    /// The API's image for a seed is `ldm txt2img`'s, pixel for pixel; png-info reads its parameters back.
    func testTxt2ImgEqualsTheCommandLineAndPngInfoReadsIt() throws {
        let server = try ServerProcess()
        let r = try http("POST", api(server, "txt2img"), json: [
            "prompt": prompt, "negative_prompt": "green", "seed": 42, "steps": 5, "cfg_scale": 7.5, "sampler_name": "DDIM",
            "batch_size": 1, "n_iter": 2, "width": 64, "height": 64, "an_unknown_field": ["ignored"]])
        XCTAssertEqual(r.status, 200, String(decoding: r.body, as: UTF8.self))
        let images = try XCTUnwrap(r.object["images"] as? [String])
        XCTAssertEqual(images.count, 2)
        let info = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((r.object["info"] as? String ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(info["all_seeds"] as? [Int], [42, 43])
        let served = try PNGImage.decode(data: [UInt8](try XCTUnwrap(Data(base64Encoded: images[0]))))
        let dir = try temporaryFolder()
        let cli = try ldm(["txt2img", "--model", fixtures.appendingPathComponent("models/tiny-sd").path, "--prompt", prompt,
                           "--negative-prompt", "green", "--seed", "42", "--steps", "5", "--guidance", "7.5", "--sampler", "ddim",
                           "--width", "64", "--height", "64", "--output", dir.appendingPathComponent("cli.png").path])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let reference = try PNGImage.read(path: dir.appendingPathComponent("cli.png").path)
        XCTAssertEqual(maxDifference(served, reference), 0)
        XCTAssertEqual(served.texts.text(forKeyword: "parameters"), reference.texts.text(forKeyword: "parameters"))
        XCTAssertEqual((info["infotexts"] as? [String])?.first, reference.texts.text(forKeyword: "parameters"))

        // Hires fix: the first pass at 32×32, enlarged ×2 and redrawn at 64×64.
        let hires = try http("POST", api(server, "txt2img"), json: [
            "prompt": prompt, "seed": 9, "steps": 4, "width": 32, "height": 32, "enable_hr": true, "hr_scale": 2,
            "hr_upscaler": "Latent", "denoising_strength": 0.6])
        XCTAssertEqual(hires.status, 200, String(decoding: hires.body, as: UTF8.self))
        let hiresImage = try PNGImage.decode(data: [UInt8](try XCTUnwrap(Data(base64Encoded: (hires.object["images"] as? [String])?.first ?? ""))))
        XCTAssertEqual([hiresImage.width, hiresImage.height], [64, 64])
        XCTAssertTrue(hiresImage.texts.text(forKeyword: "parameters")?.contains("Hires upscale: 2") ?? false)

        let pngInfo = try http("POST", api(server, "png-info"), json: ["image": "data:image/png;base64," + images[1]])
        XCTAssertEqual(pngInfo.status, 200)
        XCTAssertTrue((pngInfo.object["info"] as? String ?? "").contains("Seed: 43"))
        XCTAssertEqual((pngInfo.object["parameters"] as? [String: Any])?["Sampler"] as? String, "DDIM")
        // Both images are in the history, with their files.
        let history = try XCTUnwrap(try http("GET", server.url.appendingPathComponent("ldm/history")).object["items"] as? [[String: Any]])
        XCTAssertEqual(history.count, 3)
        let file = try http("GET", server.url.appendingPathComponent(String((history[0]["image"] as? String ?? "").dropFirst())))
        XCTAssertEqual(file.status, 200)
        XCTAssertEqual(file.headers["content-type"], "image/png")
    }

    func testInpaintingKeepsUnmaskedPixelsExactly() throws {
        let server = try ServerProcess()
        let initData = try Data(contentsOf: pipelines.appendingPathComponent("init.png"))
        let maskData = try Data(contentsOf: pipelines.appendingPathComponent("mask.png"))
        let initPNG = try PNGImage.read(path: pipelines.appendingPathComponent("init.png").path)
        let mask = try PNGImage.read(path: pipelines.appendingPathComponent("mask.png").path)
        // Whole picture, and A1111's default "only masked" (the masked region, padded, worked on at 64×64).
        for (fullRes, fill) in [(false, 1), (true, 1), (true, 0)] {
            let r = try http("POST", api(server, "img2img"), json: [
                "prompt": prompt, "seed": 1, "steps": 4, "init_images": [initData.base64EncodedString()],
                "mask": "data:image/png;base64," + maskData.base64EncodedString(), "denoising_strength": 1.0,
                "inpainting_fill": fill, "mask_blur": 4, "inpaint_full_res": fullRes, "inpaint_full_res_padding": 8,
                "width": 64, "height": 64])
            XCTAssertEqual(r.status, 200, String(decoding: r.body, as: UTF8.self))
            let image = try PNGImage.decode(data: [UInt8](try XCTUnwrap(Data(base64Encoded: (r.object["images"] as? [String])?.first ?? ""))))
            XCTAssertEqual([image.width, image.height], [initPNG.width, initPNG.height])
            XCTAssertEqual(maxDifference(image, initPNG, include: { x, y in mask.pixels[(y * mask.width + x) * mask.channels] < 128 }), 0,
                           "full res \(fullRes), fill \(fill)")
            XCTAssertGreaterThan(maxDifference(image, initPNG), 10)   // and the masked part was redrawn
        }
        // img2img without a mask changes the whole picture.
        let plain = try http("POST", api(server, "img2img"), json: ["prompt": prompt, "seed": 1, "steps": 4,
                                                                    "init_images": [initData.base64EncodedString()], "denoising_strength": 0.5])
        XCTAssertEqual(plain.status, 200)
    }

    /// --models lists a folder's models (once each); a request picks one by name, never by path.
    func testModelsFolderAndSwitching() throws {
        let server = try ServerProcess(["--models", fixtures.appendingPathComponent("models").path])
        let titles = try XCTUnwrap(try http("GET", api(server, "sd-models")).json as? [[String: Any]]).compactMap { $0["title"] as? String }
        XCTAssertEqual(titles.first, "tiny-sd")
        XCTAssertTrue(titles.contains("tiny-sd-inpaint"), "\(titles)")
        XCTAssertEqual(titles.filter { $0 == "tiny-sd" }.count, 1)
        XCTAssertEqual(try http("POST", api(server, "options"), json: ["sd_model_checkpoint": "tiny-sd-inpaint"]).status, 200)
        XCTAssertEqual(try http("GET", api(server, "options")).object["sd_model_checkpoint"] as? String, "tiny-sd-inpaint")
        // The inpainting model cannot do txt2img: a clear 4xx; override_settings picks another for one request.
        let refused = try http("POST", api(server, "txt2img"), json: ["prompt": prompt, "steps": 2])
        XCTAssertEqual(refused.status, 422)
        XCTAssertTrue((refused.object["detail"] as? String ?? "").contains("inpainting model"), String(decoding: refused.body, as: UTF8.self))
        let r = try http("POST", api(server, "txt2img"), json: ["prompt": prompt, "steps": 2, "override_settings": ["sd_model_checkpoint": "tiny-sd"]])
        XCTAssertEqual(r.status, 200)
        let info = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((r.object["info"] as? String ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(info["sd_model_name"] as? String, "tiny-sd")
    }

    /// The history (SQLite + PNG files) is still there after a restart.
    func testHistorySurvivesARestart() throws {
        let data = try temporaryFolder()
        do {
            let server = try ServerProcess(data: data)
            XCTAssertEqual(try http("POST", api(server, "txt2img"), json: ["prompt": prompt, "steps": 2, "seed": 5, "batch_size": 2]).status, 200)
        }
        let again = try ServerProcess(data: data)
        let page = try http("GET", try XCTUnwrap(URL(string: again.url.absoluteString + "/ldm/history?limit=1")))
        let items = try XCTUnwrap(page.object["items"] as? [[String: Any]])
        XCTAssertEqual(items.count, 1)
        XCTAssertEqual(items.first?["seed"] as? Int, 6)
        XCTAssertEqual(page.object["next_before"] as? Int, items.first?["id"] as? Int)
        XCTAssertEqual(try http("GET", again.url.appendingPathComponent(String((items.first?["image"] as? String ?? "").dropFirst()))).status, 200)
    }

    /// Killed (SIGKILL) while jobs run: after a restart every row of the history has its image and
    /// every image its row.
    func testAServerKilledMidRequestKeepsAConsistentHistory() throws {
        let data = try temporaryFolder()
        do {
            let server = try ServerProcess(data: data)
            for seed in 0..<6 {
                let url = api(server, "txt2img")
                Thread.detachNewThread { _ = try? http("POST", url, json: ["prompt": "a red circle", "steps": 3, "seed": seed, "batch_size": 2]) }
            }
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let rows = (try? http("GET", URL(string: server.url.absoluteString + "/ldm/history?limit=200")!))?.object["items"] as? [[String: Any]]
                if (rows?.count ?? 0) >= 2 { break }
                usleep(5_000)
            }
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
        }
        let again = try ServerProcess(data: data)
        let page = try http("GET", try XCTUnwrap(URL(string: again.url.absoluteString + "/ldm/history?limit=200")))
        let items = try XCTUnwrap(page.object["items"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(items.count, 2)
        var files = Set<String>()
        for item in items {
            let image = try XCTUnwrap(item["image"] as? String)
            files.insert(URL(fileURLWithPath: image).lastPathComponent)
            let r = try http("GET", again.url.appendingPathComponent(String(image.dropFirst())))
            XCTAssertEqual(r.status, 200, image)
            XCTAssertNoThrow(try PNGImage.decode(data: Array(r.body)), image)
        }
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("images").path))
        XCTAssertEqual(onDisk, files, "every image has its row and every row its image")
    }

    func testAuthentication() throws {
        let server = try ServerProcess(["--api-auth", "alice:s3cret,bob:pw"])
        let none = try http("GET", api(server, "options"))
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.headers["www-authenticate"], "Basic")
        XCTAssertEqual(try http("GET", api(server, "options"), auth: "alice:wrong").status, 401)
        XCTAssertEqual(try http("GET", server.url, auth: "mallory:s3cret").status, 401)
        XCTAssertEqual(try http("GET", api(server, "options"), auth: "alice:s3cret").status, 200)
        XCTAssertEqual(try http("GET", api(server, "sd-models"), auth: "bob:pw").status, 200)
    }

    func testBadInputsGet4xxAndTheServerKeepsServing() throws {
        let server = try ServerProcess(["--max-pixels", "16384", "--max-body-mb", "1"])
        let png = try Data(contentsOf: pipelines.appendingPathComponent("init.png"))
        var broken = png
        broken.replaceSubrange(40..<80, with: Data(repeating: 0x55, count: 40))
        let cases: [(String, Any?, Data?, Int)] = [
            ("txt2img", nil, Data("{not json".utf8), 422),
            ("txt2img", nil, Data("[1, 2]".utf8), 422),
            ("txt2img", ["prompt": 5], nil, 422),
            ("txt2img", ["prompt": "x", "sampler_name": "Nonexistent"], nil, 422),
            ("txt2img", ["prompt": "x", "width": 512, "height": 512], nil, 413),
            ("txt2img", ["prompt": "x", "width": 100], nil, 422),
            ("txt2img", ["prompt": "x", "steps": 100000], nil, 422),
            ("txt2img", ["prompt": "x", "batch_size": 10, "n_iter": 10], nil, 422),
            ("txt2img", ["prompt": "x", "override_settings": ["sd_model_checkpoint": "../../etc"]], nil, 422),
            ("img2img", ["prompt": "x"], nil, 422),
            ("img2img", ["prompt": "x", "init_images": ["%%%not base64%%%"]], nil, 422),
            ("img2img", ["prompt": "x", "init_images": [broken.base64EncodedString()]], nil, 422),
            ("img2img", ["prompt": "x", "init_images": ["https://example.com/cat.png"]], nil, 422),
            ("img2img", ["prompt": "x", "init_images": [Data("GIF89a....".utf8).base64EncodedString()]], nil, 422),
            ("img2img", ["prompt": "x", "init_images": [png.base64EncodedString()], "denoising_strength": 2], nil, 422),
            ("png-info", ["image": ""], nil, 422),
            ("txt2img", nil, Data(repeating: 0x20, count: 2 << 20), 413),
        ]
        for (route, json, raw, expected) in cases {
            let r = try http("POST", api(server, route), json: json, raw: raw)
            XCTAssertEqual(r.status, expected, "\(route) \(String(describing: json).prefix(80)): \(String(decoding: r.body, as: UTF8.self))")
            XCTAssertNotNil(r.object["detail"] as? String, "A1111's error shape")
            XCTAssertEqual(try http("GET", api(server, "options")).status, 200, "still serving after \(route)")
        }
    }

    func testTheServersLimitsBindTheModelsDefaultsToo() throws {
        // The tiny model draws 64×64 in 20 steps by default: a request that names neither must not
        // get past --max-pixels 1024 or --max-steps 5.
        let server = try ServerProcess(["--max-pixels", "1024", "--max-steps", "5"])
        let bySize = try http("POST", api(server, "txt2img"), json: ["prompt": "x"])
        XCTAssertEqual(bySize.status, 422, String(decoding: bySize.body, as: UTF8.self))
        XCTAssertTrue((bySize.object["detail"] as? String ?? "").contains("64×64"), String(decoding: bySize.body, as: UTF8.self))
        let bySteps = try http("POST", api(server, "txt2img"), json: ["prompt": "x", "width": 32, "height": 32])
        XCTAssertEqual(bySteps.status, 422, String(decoding: bySteps.body, as: UTF8.self))
        XCTAssertTrue((bySteps.object["detail"] as? String ?? "").contains("20 steps"), String(decoding: bySteps.body, as: UTF8.self))
        let within = try http("POST", api(server, "txt2img"), json: ["prompt": "x", "width": 32, "height": 32, "steps": 2])
        XCTAssertEqual(within.status, 200, String(decoding: within.body, as: UTF8.self))
        XCTAssertEqual((within.object["images"] as? [String])?.count, 1)
    }

    func testProgressAndInterrupt() throws {
        let server = try ServerProcess()
        final class Box: @unchecked Sendable { var result: HTTPResult? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            box.result = try? http("POST", self.api(server, "txt2img"), json: ["prompt": self.prompt, "steps": 60, "n_iter": 16, "seed": 3, "sampler_name": "Euler"])
            done.signal()
        }
        var seen: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let p = try http("GET", api(server, "progress")).object
            if let fraction = p["progress"] as? Double, fraction > 0 { seen = p; break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let state = try XCTUnwrap(seen["state"] as? [String: Any], "no progress seen")
        // A step preview of the running image, at its size.
        var preview: PNGImage?
        for _ in 0..<100 where preview == nil {
            if let b64 = try http("GET", api(server, "progress")).object["current_image"] as? String, let data = Data(base64Encoded: b64) {
                preview = try PNGImage.decode(data: [UInt8](data))
            }
        }
        XCTAssertEqual(preview.map { [$0.width, $0.height] }, [64, 64])
        let skipping = try XCTUnwrap(URL(string: api(server, "progress").absoluteString + "?skip_current_image=true"))
        XCTAssertTrue(try http("GET", skipping).object["current_image"] is NSNull)
        XCTAssertEqual(state["job_count"] as? Int, 16)
        XCTAssertEqual(state["sampling_steps"] as? Int, 60)
        XCTAssertEqual(try http("POST", api(server, "interrupt")).status, 200)
        XCTAssertEqual(done.wait(timeout: .now() + 120), .success)
        let r = try XCTUnwrap(box.result)
        XCTAssertEqual(r.status, 200)
        let count = (r.object["images"] as? [String])?.count ?? 0
        XCTAssertGreaterThanOrEqual(count, 1)
        XCTAssertLessThan(count, 16, "interrupt ends the job early and returns what it has")
        XCTAssertEqual(try http("GET", api(server, "progress")).object["progress"] as? Double, 0)
    }

    func testTwelveConcurrentClientsAllGetTheirImages() throws {
        let server = try ServerProcess()
        final class Box: @unchecked Sendable { var statuses = [Int](repeating: 0, count: 12); var counts = [Int](repeating: 0, count: 12); let lock = NSLock() }
        let box = Box()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let r = try? http("POST", api(server, "txt2img"), json: ["prompt": prompt, "steps": 2, "seed": i])
            box.lock.withLock {
                box.statuses[i] = r?.status ?? -1
                box.counts[i] = (r?.object["images"] as? [String])?.count ?? 0
            }
        }
        XCTAssertEqual(box.statuses, Array(repeating: 200, count: 12))
        XCTAssertEqual(box.counts, Array(repeating: 1, count: 12))
    }
}
