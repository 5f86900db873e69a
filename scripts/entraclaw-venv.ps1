# Shared by setup-windows.ps1 and deploy-windows.ps1: find Python 3.10+, make the venv, install the wheel.
# Nothing here decides anything about the tenant or the key; that is `entraclaw setup` / `rotate`.

function Find-EntraclawPython {
    # The py launcher knows every installed Python; `python` on PATH may be the Store stub.
    $candidates = @()
    if (Get-Command py -ErrorAction SilentlyContinue) { $candidates += ,@('py', '-3') }
    if (Get-Command python -ErrorAction SilentlyContinue) { $candidates += ,@('python') }
    foreach ($candidate in $candidates) {
        $exe = $candidate[0]
        $pre = @($candidate | Select-Object -Skip 1)
        $version = & $exe @pre -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>$null
        if ($LASTEXITCODE -eq 0 -and $version -and ([version]$version -ge [version]'3.10')) {
            $found = @($exe) + $pre
            return ,$found
        }
    }
    throw 'Python 3.10 or newer was not found (tried the py launcher and python). Install it from python.org, then re-run.'
}

function Install-EntraclawVenv {
    param([string]$Venv, [string]$Wheel)
    $venvPython = Join-Path $Venv 'Scripts\python.exe'
    if (-not (Test-Path $venvPython)) {
        $python = Find-EntraclawPython
        $exe = $python[0]
        $pre = @($python | Select-Object -Skip 1)
        & $exe @pre -m venv $Venv
        if ($LASTEXITCODE -ne 0) { throw "Creating the venv $Venv failed (exit code $LASTEXITCODE)." }
    }
    if (-not $Wheel) {
        $dist = Join-Path (Split-Path $PSScriptRoot -Parent) 'dist'
        $newest = Get-ChildItem -Path $dist -Filter 'entraclaw-*.whl' -ErrorAction SilentlyContinue |
            Sort-Object LastWriteTime -Descending | Select-Object -First 1
        if ($newest) { $Wheel = $newest.FullName } else { $Wheel = 'entraclaw' }
    }
    & $venvPython -m pip install --quiet --upgrade $Wheel
    if ($LASTEXITCODE -ne 0) { throw "Installing $Wheel into $Venv failed (exit code $LASTEXITCODE)." }
    return $venvPython
}
