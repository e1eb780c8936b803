fn main() -> anyhow::Result<()> {
    anyhow::bail!("secrets-init-webhook is not implemented yet")
}
