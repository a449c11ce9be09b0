//! Compiles `proto/` without a system `protoc`: protox parses the files, tonic-prost-build
//! generates the code, and the descriptor set is kept for gRPC server reflection.

use std::{env, fs, io, path::PathBuf};

use prost::Message as _;

fn proto_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// The built web app (`clients/web/dist`, committed) as a list of `(path, bytes)` that
/// `connect::web` serves; empty when the directory is missing.
fn embed_web_app(out_dir: &std::path::Path) -> io::Result<()> {
    let root = PathBuf::from("clients/web/dist");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    println!("cargo:rerun-if-changed={}", path.display());
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    let mut code = String::from("pub(super) static ASSETS: &[(&str, &[u8])] = &[\n");
    for file in files {
        let url = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let absolute = fs::canonicalize(&file)?;
        code.push_str(&format!("    ({:?}, include_bytes!({:?})),\n", format!("/{url}"), absolute));
    }
    code.push_str("];\n");
    fs::write(out_dir.join("web_assets.rs"), code)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    proto_files("proto".as_ref(), &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    embed_web_app(&out_dir)?;
    fs::write(out_dir.join("gim_descriptor.bin"), fds.encode_to_vec())?;
    // What public reflection lists: everything but the cluster's internal API.
    let mut public = fds.clone();
    public.file.retain(|file| file.package() != "gim.connect.v1");
    fs::write(out_dir.join("gim_public_descriptor.bin"), public.encode_to_vec())?;

    // gim's codec reports a request that does not decode as INVALID_ARGUMENT (src/api/codec.rs).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::api::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
