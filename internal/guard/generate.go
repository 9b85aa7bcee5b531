package guard

// deploy/ is charts/dpfdoctor-guard rendered with its default values, so the
// guard's RBAC is written once (docs/guard.md, "Install with Helm").
//go:generate ../../hack/generate-deploy.sh
