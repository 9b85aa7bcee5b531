package dpf

//go:generate go run github.com/dpfdoctor/dpfdoctor/cmd/dpfdoctor versions -o markdown --out ../../docs/versions.md
